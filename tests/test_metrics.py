"""Tests for speechlm.eval.metrics (PNMI / purities, bitrate) and speechlm.eval.abx (DTW, ABX)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from speechlm.eval import abx
from speechlm.eval.abx import AbxResult, abx_error, dtw_distance
from speechlm.eval.metrics import UnitPhoneStats, phone_unit_stats, unit_rate_and_bitrate

# --------------------------------------------------------------------------------------------
# phone_unit_stats
# --------------------------------------------------------------------------------------------


def test_one_to_one_mapping_is_perfect() -> None:
    rng = np.random.default_rng(0)
    phones = rng.integers(0, 12, size=5000)
    perm = rng.permutation(30)[:12]  # phone p -> unit perm[p]
    stats = phone_unit_stats(perm[phones], phones, n_units=30, n_phones=12)
    assert stats.pnmi == pytest.approx(1.0, abs=1e-12)
    assert stats.phone_purity == pytest.approx(1.0, abs=1e-12)
    assert stats.cluster_purity == pytest.approx(1.0, abs=1e-12)
    assert stats.n_frames == 5000
    assert stats.units_used == 12


def test_units_independent_of_phones_give_pnmi_near_zero() -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    phones = rng.integers(0, 10, size=n)
    units = rng.integers(0, 20, size=n)
    stats = phone_unit_stats(units, phones, n_units=20, n_phones=10)
    assert 0.0 <= stats.pnmi < 0.005
    # Each unit is mostly "some" phone by chance only: purity ~ 1/10, cluster purity ~ 1/20.
    assert stats.phone_purity < 0.12
    assert stats.cluster_purity < 0.06


def _frames_from_counts(counts: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    phones, units = [], []
    for y, row in enumerate(counts):
        for z, c in enumerate(row):
            phones += [y] * c
            units += [z] * c
    return np.array(units), np.array(phones)


def test_hand_computed_example() -> None:
    # Counts (phone rows, unit columns), N = 8:
    #        u0 u1 u2 u3
    #   p0 [  3, 1, 0, 0 ]
    #   p1 [  0, 1, 3, 0 ]
    # p(y) = (1/2, 1/2), p(z) = (3/8, 2/8, 3/8, 0), H(y) = ln 2.
    # I(y;z) = 3/8 ln((3/8) / (1/2 * 3/8)) + 1/8 ln((1/8) / (1/2 * 2/8)) * 2
    #        + 3/8 ln((3/8) / (1/2 * 3/8)) = 3/4 ln 2  ->  PNMI = 3/4.
    # Phone purity = (3 + 1 + 3) / 8 (best phone per unit); cluster purity = (3 + 3) / 8.
    units, phones = _frames_from_counts([[3, 1, 0, 0], [0, 1, 3, 0]])
    # Frames with a negative phone label are ignored, whatever their unit.
    units = np.concatenate([units, [3, 3, 0]])
    phones = np.concatenate([phones, [-1, -1, -5]])
    order = np.random.default_rng(0).permutation(units.size)
    stats = phone_unit_stats(units[order], phones[order], n_units=4, n_phones=2)
    assert stats.pnmi == pytest.approx(0.75, abs=1e-12)
    assert stats.phone_purity == pytest.approx(7 / 8, abs=1e-12)
    assert stats.cluster_purity == pytest.approx(6 / 8, abs=1e-12)
    assert stats.n_frames == 8
    assert stats.units_used == 3
    assert stats.as_dict() == {
        "pnmi": stats.pnmi,
        "phone_purity": stats.phone_purity,
        "cluster_purity": stats.cluster_purity,
        "n_frames": 8,
        "units_used": 3,
    }


def test_hand_computed_example_unequal_phones() -> None:
    # Counts: p0 [2, 0], p1 [1, 1]; N = 4, p(y) = (1/2, 1/2), p(z) = (3/4, 1/4).
    # I = 1/2 ln(4/3) + 1/4 ln(2/3) + 1/4 ln 2 = 3/2 ln 2 - 3/4 ln 3, H(y) = ln 2.
    units, phones = _frames_from_counts([[2, 0], [1, 1]])
    stats = phone_unit_stats(units, phones, n_units=2, n_phones=3)  # phone 2 never occurs
    assert stats.pnmi == pytest.approx(1.5 - 0.75 * math.log2(3), abs=1e-12)
    assert stats.phone_purity == pytest.approx(3 / 4, abs=1e-12)  # u0 -> p0 (2), u1 -> p1 (1)
    assert stats.cluster_purity == pytest.approx(3 / 4, abs=1e-12)  # p0 -> u0 (2), p1 -> 1


def test_single_phone_gives_nan_pnmi() -> None:
    stats = phone_unit_stats(np.array([0, 1, 1]), np.array([2, 2, 2]), n_units=2, n_phones=3)
    assert math.isnan(stats.pnmi)
    assert stats.phone_purity == 1.0
    assert stats.cluster_purity == pytest.approx(2 / 3)


def test_unit_phone_stats_is_frozen() -> None:
    stats = phone_unit_stats(np.array([0, 1]), np.array([0, 1]), n_units=2, n_phones=2)
    assert isinstance(stats, UnitPhoneStats)
    with pytest.raises(AttributeError):
        stats.pnmi = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("units", "phones", "match"),
    [
        ([0, 1, 2], [0, 1], "same length"),
        ([], [], "no frames"),
        ([0, 1], [-1, -1], "no frames"),
        ([0, 7], [0, 1], r"units must lie in \[0, 4\)"),
        ([0, -1], [0, 1], r"units must lie in \[0, 4\)"),
        ([0, 1], [0, 3], "phone labels must be < n_phones=3"),
        ([0.0, 1.0], [0, 1], "units must hold integers"),
        ([[0, 1]], [[0, 1]], "units must be a 1-D array"),
    ],
)
def test_phone_unit_stats_rejects_bad_input(units: list, phones: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        phone_unit_stats(np.array(units), np.array(phones), n_units=4, n_phones=3)


def test_phone_unit_stats_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_units must be a positive integer"):
        phone_unit_stats(np.array([0]), np.array([0]), n_units=0, n_phones=3)


# --------------------------------------------------------------------------------------------
# DTW
# --------------------------------------------------------------------------------------------


def _reference_dtw(dist: np.ndarray) -> float:
    """Plain DP: min summed cost, ties broken by the shorter path; cost / path length."""
    n, m = dist.shape
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for i in range(n):
        for j in range(m):
            preds = [best[p] for p in ((i - 1, j), (i, j - 1), (i - 1, j - 1)) if p in best]
            cost, length = min(preds) if preds else (0.0, 0)
            best[i, j] = (cost + float(dist[i, j]), length + 1)
    cost, length = best[n - 1, m - 1]
    return cost / length


def test_dtw_of_segment_with_itself_is_zero() -> None:
    rng = np.random.default_rng(2)
    for t in (1, 2, 7, 20):
        seg = rng.standard_normal((t, 39))
        assert dtw_distance(seg, seg) == pytest.approx(0.0, abs=1e-6)
        assert dtw_distance(seg, seg, distance="euclidean") == 0.0


def test_dtw_is_symmetric() -> None:
    rng = np.random.default_rng(3)
    for distance in ("cosine", "euclidean"):
        for n, m in [(1, 5), (3, 8), (9, 4), (6, 6)]:
            a, b = rng.standard_normal((n, 5)), rng.standard_normal((m, 5))
            assert dtw_distance(a, b, distance) == pytest.approx(
                dtw_distance(b, a, distance), rel=1e-6
            )


def test_dtw_hand_computed() -> None:
    # |a_i - b_j| = [[0, 1, 4], [4, 3, 0]]: the best path (0,0) -> (0,1) -> (1,2) costs 0+1+0
    # over 3 cells; the diagonal start (0,0) -> (1,1) -> (1,2) would cost 3.
    a, b = np.array([[0.0], [4.0]]), np.array([[0.0], [1.0], [4.0]])
    assert dtw_distance(a, b, "euclidean") == pytest.approx(1 / 3, rel=1e-6)
    # One frame against two: the only path visits both cells, (1 + 1) / 2.
    assert dtw_distance(np.array([[0.0], [2.0]]), np.array([[1.0]]), "euclidean") == 1.0
    # Cosine: orthogonal frames are at distance 1, opposite ones at 2, equal directions at 0
    # (up to float32 rounding).
    cos = [
        dtw_distance(np.array([[1.0, 0.0]]), np.array([[0.0, 3.0]])),
        dtw_distance(np.array([[1.0, 1.0]]), np.array([[-2.0, -2.0]])),
        dtw_distance(np.array([[1.0, 2.0]]), np.array([[2.0, 4.0]])),
    ]
    np.testing.assert_allclose(cos, [1.0, 2.0, 0.0], atol=1e-6)


def test_dtw_cosine_zero_frames() -> None:
    zero, one = np.zeros((1, 3)), np.array([[0.0, 1.0, 0.0]])
    assert dtw_distance(zero, zero) == 0.0
    assert dtw_distance(zero, one) == 1.0
    assert dtw_distance(one, zero) == 1.0


def test_batched_dtw_matches_plain_dynamic_programming() -> None:
    # Small integer distances make many equal-cost paths, exercising the tie-break.
    rng = np.random.default_rng(4)
    for n, m in [(1, 1), (1, 4), (4, 1), (2, 2), (3, 5), (5, 3), (7, 7), (2, 11)]:
        dist = rng.integers(0, 3, size=(50, n, m)).astype(np.float32)
        got = abx._dtw_average_cost(dist)
        want = [_reference_dtw(d) for d in dist]
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_dtw_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="distance must be one of"):
        dtw_distance(np.ones((2, 3)), np.ones((2, 3)), distance="manhattan")
    with pytest.raises(ValueError, match=r"segment 1 must be a \[T, D\] array"):
        dtw_distance(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="same feature dimension"):
        dtw_distance(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="finite"):
        dtw_distance(np.ones((2, 3)), np.full((2, 3), np.nan))


# --------------------------------------------------------------------------------------------
# ABX
# --------------------------------------------------------------------------------------------


def _dataset(
    rng: np.random.Generator,
    n_phones: int,
    n_speakers: int,
    per_group: int,
    separation: float,
    dim: int = 8,
) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Segments of 1-6 frames around one random centre per phone (separation 0: pure noise)."""
    centres = rng.standard_normal((n_phones, dim)) * separation
    segments, phones, speakers = [], [], []
    for p, s, _ in itertools.product(range(n_phones), range(n_speakers), range(per_group)):
        t = int(rng.integers(1, 7))
        segments.append(centres[p] + rng.standard_normal((t, dim)))
        phones.append(p)
        speakers.append(f"spk{s}")
    order = rng.permutation(len(segments))
    return [segments[i] for i in order], [phones[i] for i in order], [speakers[i] for i in order]


@pytest.mark.parametrize("mode", ["within", "across"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_abx_separated_clusters_near_zero(mode: str, distance: str) -> None:
    segs, phones, spks = _dataset(np.random.default_rng(5), 5, 3, 5, separation=10.0)
    result = abx_error(segs, phones, spks, mode=mode, distance=distance)
    assert result.error < 0.01
    assert result.n_triplets > 1000


@pytest.mark.parametrize("mode", ["within", "across"])
def test_abx_pure_noise_near_chance(mode: str) -> None:
    segs, phones, spks = _dataset(np.random.default_rng(6), 5, 4, 8, separation=0.0)
    result = abx_error(segs, phones, spks, mode=mode)
    assert abs(result.error - 0.5) < 0.04


def test_abx_is_deterministic_under_seed() -> None:
    segs, phones, spks = _dataset(np.random.default_rng(7), 4, 3, 8, separation=0.3)
    for mode in ("within", "across"):
        runs = [
            abx_error(segs, phones, spks, mode=mode, max_triplets_per_cell=20, seed=seed)
            for seed in (11, 11, 12)
        ]
        assert runs[0] == runs[1]
        assert runs[0].n_triplets == runs[2].n_triplets  # the caps, not the draws, fix counts
        assert runs[0].error != runs[2].error  # but another seed draws other triplets


def _reference_abx(
    segments: list[np.ndarray], phones: list[int], speakers: list[str], mode: str, distance: str
) -> tuple[float, int, int]:
    """Brute force over all triplets, averaging cell -> X speaker -> A/B speaker -> phone pair."""
    dist: dict[tuple[int, int], float] = {}

    def d(i: int, j: int) -> float:
        key = (min(i, j), max(i, j))
        if key not in dist:
            dist[key] = dtw_distance(segments[key[0]], segments[key[1]], distance)
        return dist[key]

    cells: dict[tuple, list[float]] = {}
    for a, b, x in itertools.product(range(len(segments)), repeat=3):
        if a == x or phones[a] != phones[x] or phones[a] == phones[b]:
            continue
        if speakers[a] != speakers[b] or (speakers[x] == speakers[a]) != (mode == "within"):
            continue
        err = 1.0 if d(a, x) > d(b, x) else 0.5 if d(a, x) == d(b, x) else 0.0
        cells.setdefault((phones[a], phones[b], speakers[a], speakers[x]), []).append(err)
    by_ab_speaker: dict[tuple, list[float]] = {}
    for (pa, pb, sa, _), errs in cells.items():
        by_ab_speaker.setdefault((pa, pb, sa), []).append(float(np.mean(errs)))
    by_pair: dict[tuple, list[float]] = {}
    for (pa, pb, _), errs in by_ab_speaker.items():
        by_pair.setdefault((pa, pb), []).append(float(np.mean(errs)))
    error = float(np.mean([np.mean(v) for v in by_pair.values()]))
    return error, sum(len(v) for v in cells.values()), len(cells)


@pytest.mark.parametrize("mode", ["within", "across"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_abx_matches_brute_force(mode: str, distance: str) -> None:
    rng = np.random.default_rng(8)
    n = 30
    # Unbalanced phones and speakers, so that the averaging order matters.
    phones = rng.choice(4, size=n, p=[0.5, 0.25, 0.15, 0.1]).tolist()
    speakers = rng.choice(["a", "b", "c", "d"], size=n, p=[0.45, 0.3, 0.15, 0.1]).tolist()
    segments = [rng.standard_normal((int(rng.integers(1, 6)), 3)) for _ in range(n)]
    segments[0][0] = 0.0  # a zero frame
    want = _reference_abx(segments, phones, speakers, mode, distance)
    got = abx_error(
        segments,
        phones,
        speakers,
        mode=mode,
        distance=distance,
        max_triplets_per_cell=10**9,
        max_x_speakers=None,
    )
    assert got.error == pytest.approx(want[0], abs=1e-12)
    assert (got.n_triplets, got.n_cells) == want[1:]


def test_abx_counts_with_cap() -> None:
    # One speaker; phone 0 has 3 items, phone 1 has 2. Cell (0, 1): 3 A x 2 X x 2 B = 12
    # triplets, cell (1, 0): 2 A x 1 X x 3 B = 6. A cap of 5 keeps 5 of each.
    segs = [np.full((2, 2), float(i + 1)) for i in range(5)]
    phones, spks = [0, 0, 0, 1, 1], ["s"] * 5
    assert abx_error(segs, phones, spks, max_triplets_per_cell=100).n_triplets == 18
    capped = abx_error(segs, phones, spks, max_triplets_per_cell=5)
    assert (capped.n_triplets, capped.n_cells) == (10, 2)


def test_abx_phone_pairs_weigh_equally() -> None:
    # Phone 0 is frequent and perfectly separated from phone 1; phone 2 is indistinguishable
    # from phone 1. Pair errors: (0,1) = (1,0) = (0,2) = (2,0) = 0; (1,2) and (2,1) are ties,
    # error 0.5 each. Averaged over the 6 ordered pairs: 1/6, however many 0s there are.
    segs, phones = [], []
    for p, count in [(0, 20), (1, 3), (2, 3)]:
        for _ in range(count):
            segs.append(np.array([[1.0, 0.0]]) if p == 0 else np.array([[0.0, 1.0]]))
            phones.append(p)
    result = abx_error(segs, phones, ["s"] * len(segs), max_triplets_per_cell=10**6)
    assert result.error == pytest.approx(1 / 6)
    assert result.as_dict() == {
        "error": result.error,
        "n_triplets": result.n_triplets,
        "n_cells": 6,
    }
    assert isinstance(result, AbxResult)


def test_abx_speakers_weigh_equally_within_a_phone_pair() -> None:
    # Speaker s1 separates phones 0 and 1; speaker s2 does not (its 0 and 1 are identical, so
    # its (0,1) and (1,0) cells tie: error 0.5) but separates both from phone 2, which only s2
    # has. Phone pairs: (0,1), (1,0) -> mean over s1, s2 = 0.25 each; (0,2), (2,0), (1,2),
    # (2,1) -> 0. Overall 0.5 / 6 = 1/12 (a plain mean over the 8 cells would give 1/8).
    e0, e1 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    groups = [("s1", 0, e0), ("s1", 1, e1), ("s2", 0, e0), ("s2", 1, e0), ("s2", 2, e1)]
    segs, phones, spks = [], [], []
    for spk, phone, frame in groups:
        segs += [frame, frame.copy()]
        phones += [phone, phone]
        spks += [spk, spk]
    result = abx_error(segs, phones, spks)
    assert result.error == pytest.approx(1 / 12)
    assert result.n_cells == 8


def test_cell_sampling_is_without_replacement() -> None:
    rng = np.random.default_rng(9)
    a_n, b_n, x_n = np.array([3, 6, 2, 40]), np.array([2, 5, 1, 30]), np.array([3, 6, 4, 40])
    same = np.array([True, True, False, True])
    totals = [3 * 2 * 2, 6 * 5 * 5, 2 * 1 * 4, 40 * 39 * 30]
    cap = 50
    cell, ia, ib, ix = abx._cell_triplets(a_n, b_n, x_n, same, cap, rng)
    for c, total in enumerate(totals):
        mine = cell == c
        triplets = set(zip(ia[mine].tolist(), ib[mine].tolist(), ix[mine].tolist(), strict=True))
        assert len(triplets) == mine.sum() == min(cap, total)
        assert all(0 <= i < a_n[c] and 0 <= j < b_n[c] and 0 <= k < x_n[c] for i, j, k in triplets)
        if same[c]:
            assert all(i != k for i, _, k in triplets)


def test_across_draws_at_most_max_x_speakers() -> None:
    # 4 phones x 6 speakers, every group present: each (A group, B group) has 5 other speakers.
    g_phone = np.repeat(np.arange(4), 6)
    g_spk = np.tile(np.arange(6), 4)
    g_n = np.full(24, 2)
    rng = np.random.default_rng(10)
    for k, expected in [(2, 2), (5, 5), (9, 5)]:
        ga, gb, gx = abx._abx_cells(g_phone, g_spk, g_n, "across", k, rng)
        assert np.all(g_phone[gx] == g_phone[ga])
        assert np.all(g_spk[gx] != g_spk[ga])
        assert np.all(g_spk[ga] == g_spk[gb])
        assert np.all(g_phone[ga] != g_phone[gb])
        cells = set(zip(ga.tolist(), gb.tolist(), gx.tolist(), strict=True))
        assert len(cells) == ga.size == 24 * 3 * expected


def test_dense_and_sorted_pair_deduplication_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    segs, phones, spks = _dataset(np.random.default_rng(11), 4, 3, 7, separation=0.5)
    results = []
    for factor in (0, 10**6):  # force the sort path, then the dense table
        monkeypatch.setattr(abx, "_DENSE_TABLE_FACTOR", factor)
        for mode in ("within", "across"):
            results.append(abx_error(segs, phones, spks, mode=mode, max_triplets_per_cell=30))
    assert results[:2] == results[2:]


def test_abx_accepts_int_speakers_and_ignores_labels_values() -> None:
    segs, phones, spks = _dataset(np.random.default_rng(12), 3, 3, 4, separation=1.0)
    spk_ids = {"spk0": 7, "spk1": -3, "spk2": 100}
    base = abx_error(segs, phones, spks)
    assert abx_error(segs, phones, [spk_ids[s] for s in spks]) == base
    assert abx_error(segs, [p * 10 - 5 for p in phones], spks) == base


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"phones": [0, 1]}, "must have the same length"),
        ({"mode": "between"}, "mode must be one of"),
        ({"distance": "cityblock"}, "distance must be one of"),
        ({"max_triplets_per_cell": 0}, "max_triplets_per_cell must be a positive integer"),
        ({"phones": [0.5, 1.0, 0.0, 1.0]}, "phones must be a sequence of integers"),
        ({"segments": [np.ones((2, 3))] * 3 + [np.ones((0, 3))]}, r"segment 3 must be a \[T, D\]"),
        ({"segments": [np.ones((2, 3))] * 3 + [np.ones((2, 4))]}, "same feature dimension"),
        ({"speakers": ["a", "a", "b", "b"]}, "no valid ABX triplet"),
        ({"mode": "across", "speakers": ["a"] * 4}, "no valid ABX triplet"),
    ],
)
def test_abx_rejects_bad_input(kwargs: dict, match: str) -> None:
    args = {
        "segments": [np.ones((2, 3))] * 4,
        "phones": [0, 0, 1, 1],
        "speakers": ["a", "b", "a", "b"],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        abx_error(**args)


def test_abx_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="no segments"):
        abx_error([], [], [])


# --------------------------------------------------------------------------------------------
# Bitrate
# --------------------------------------------------------------------------------------------


def test_bitrate_of_known_sequences() -> None:
    # 6 units in 2 s; units 0, 1, 2 twice each: entropy log2(3) bits.
    out = unit_rate_and_bitrate([np.array([0, 1, 0, 2]), np.array([1, 2])], [0.5, 1.5], 4)
    assert out["units_per_second"] == pytest.approx(3.0)
    assert out["entropy_bits"] == pytest.approx(math.log2(3))
    assert out["bitrate"] == pytest.approx(3 * math.log2(3))
    assert set(out) == {"units_per_second", "entropy_bits", "bitrate"}


def test_bitrate_skewed_distribution() -> None:
    # p = (1/2, 1/4, 1/4): H = 1/2 * 1 + 2 * 1/4 * 2 = 1.5 bits; 8 units over 4 s.
    seq = np.array([0, 1, 0, 2, 0, 1, 0, 2])
    out = unit_rate_and_bitrate([seq, np.array([], dtype=np.int64)], [3.0, 1.0], 3)
    assert out == pytest.approx({"units_per_second": 2.0, "entropy_bits": 1.5, "bitrate": 3.0})


def test_bitrate_single_unit_is_zero() -> None:
    out = unit_rate_and_bitrate([np.array([5])], [0.25], 6)
    assert out == {"units_per_second": 4.0, "entropy_bits": 0.0, "bitrate": 0.0}


@pytest.mark.parametrize(
    ("sequences", "durations", "match"),
    [
        ([[0, 1]], [1.0, 2.0], "same length"),
        ([], [], "no sequences"),
        ([[0, 1]], [0.0], "durations_s must be a finite number of seconds > 0"),
        ([[0, 1]], [float("nan")], "durations_s must be a finite number of seconds > 0"),
        ([[], []], [1.0, 1.0], "no units"),
        ([[0, 4]], [1.0], r"units must lie in \[0, 4\)"),
        ([[0, 1, 1, 2]], [1.0], r"sequences\[0\] repeats a unit .* deduplicate"),
        ([[0.0, 1.0]], [1.0], "must hold integers"),
    ],
)
def test_bitrate_rejects_bad_input(sequences: list, durations: list, match: str) -> None:
    arrays = [
        np.array(s, dtype=np.int64 if all(isinstance(u, int) for u in s) else None)
        for s in sequences
    ]
    with pytest.raises(ValueError, match=match):
        unit_rate_and_bitrate(arrays, durations, n_units=4)
