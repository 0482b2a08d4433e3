"""ABX phone discriminability of unit (or feature) frames, ZeroSpeech style.

* :func:`abx_error` -- a simplified ZeroSpeech-style ABX phone discriminability test on phone
  segments (no phonetic context), within or across speakers, with DTW-aligned segment distances.
* :func:`dtw_distance` exposes the segment distance it uses.

Pure numpy and deterministic under a seed. Bad input raises :class:`ValueError` with a message
saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from speechlm.eval.metrics import check_positive_int

__all__ = ["AbxResult", "abx_error", "dtw_distance"]

_DISTANCES = ("cosine", "euclidean")
_MODES = ("within", "across")
# Upper bound on the number of cells (pairs x frames x frames) in one DTW batch: temporaries of
# a few MiB stay in cache, and the per-batch Python overhead is still negligible.
_DTW_BATCH_CELLS = 250_000
# Same idea for the [pairs, n, m, D] difference tensor of the euclidean frame distance.
_EUCLIDEAN_BATCH_ELEMS = 2_000_000
# Distinct segment pairs are found with a dense table when it has at most this many slots per
# lookup (memory ~9 bytes per slot), else by sorting the lookups.
_DENSE_TABLE_FACTOR = 4


# --------------------------------------------------------------------------------------------
# DTW segment distances
# --------------------------------------------------------------------------------------------


class _Frames:
    """All frames of a list of segments, concatenated and prepared for one frame distance.

    Frames are stored in float32: ABX only compares distances, and halving the memory traffic
    roughly halves the cost of the frame-distance and DTW passes.

    Attributes:
        data: ``[F, D]`` float32 frames (unit-normalised for cosine; zero frames stay zero).
        zero: ``[F]`` bool, True for all-zero frames (cosine only), or None if there are none.
        offsets: ``[N]`` index of the first frame of each segment in ``data``.
        lengths: ``[N]`` number of frames of each segment.
    """

    def __init__(self, segments: Sequence[np.ndarray], distance: str) -> None:
        arrays = [np.asarray(s, dtype=np.float64) for s in segments]
        self.lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        data = np.concatenate(arrays, axis=0)
        self.zero: np.ndarray | None = None
        if distance == "cosine":
            norms = np.linalg.norm(data, axis=1)
            zero = norms == 0
            data = data / np.where(zero, 1.0, norms)[:, None]
            self.zero = zero if zero.any() else None
        self.data = data.astype(np.float32)
        self.distance = distance

    def gather(self, seg: np.ndarray, n: int) -> np.ndarray:
        """``[P]`` segment indices, all of length ``n`` -> ``[P, n]`` frame row indices."""
        return self.offsets[seg][:, None] + np.arange(n)

    def frame_distances(self, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
        """Frame distances ``[P, n, m]`` (float32, >= +0.0) between rows ``[P, n]``, ``[P, m]``."""
        a, b = self.data[rows_a], self.data[rows_b]  # [P, n, D], [P, m, D]
        if self.distance == "cosine":
            dist = np.matmul(a, b.transpose(0, 2, 1))
            np.subtract(np.float32(1.0), dist, out=dist)
            if self.zero is not None:
                both_zero = self.zero[rows_a][:, :, None] & self.zero[rows_b][:, None, :]
                dist[both_zero] = 0.0
            # Adding +0.0 turns a -0.0 from the clip into +0.0 (see _dtw_average_cost).
            return np.clip(dist, 0.0, 2.0, out=dist) + np.float32(0.0)
        p, n, dim = a.shape
        m = b.shape[1]
        out = np.empty((p, n, m), dtype=np.float32)
        step = max(1, _EUCLIDEAN_BATCH_ELEMS // max(1, n * m * dim))
        for s in range(0, p, step):
            diff = a[s : s + step, :, None, :] - b[s : s + step, None, :, :]
            out[s : s + step] = np.sqrt(np.einsum("pijd,pijd->pij", diff, diff))
        return out


# A DTW cell (cost, path length) packed in one int64: the float32 bit pattern of the cost in
# the high 32 bits, the length in the low 32. For floats >= +0.0 (including +inf) the bit
# pattern, read as an integer, orders like the value, so the integer order of packed cells is
# the lexicographic order of (cost, length).
_LOW_MASK = np.int64(0xFFFFFFFF)
_INF_CELL = np.int64(0x7F800000) << np.int64(32)  # cost +inf, length 0


def _pack(cost: np.ndarray, length: np.ndarray | int) -> np.ndarray:
    """Pack float32 costs ``>= +0.0`` and integer lengths into int64 DTW cells."""
    return (cost.view(np.uint32).astype(np.int64) << np.int64(32)) | length


def _unpack_cost(cell: np.ndarray) -> np.ndarray:
    """Float32 costs of packed DTW cells."""
    return (cell >> np.int64(32)).astype(np.uint32).view(np.float32)


def _dtw_average_cost(dist: np.ndarray) -> np.ndarray:
    """Average frame distance along the optimal DTW path, for a batch of equal-shape matrices.

    The path goes from ``(0, 0)`` to ``(n-1, m-1)`` with steps ``(1, 0)``, ``(0, 1)`` and
    ``(1, 1)`` and minimises the summed frame distance; the returned value is that sum divided
    by the number of cells on the path. Among paths of equal summed cost the shortest is taken,
    which makes the result symmetric in the two segments. Costs are accumulated in float32.

    The recursion runs over anti-diagonals, vectorised across the batch and along each
    diagonal, on packed (cost, length) cells (see ``_pack``) so that choosing the best of the
    three predecessors, ties included, is two integer minimums.

    Args:
        dist: ``[P, n, m]`` float32 frame distances, all ``>= +0.0`` (no ``-0.0``).

    Returns:
        ``[P]`` float64 path-averaged distances.
    """
    p, n, m = dist.shape
    if n == 1 or m == 1:  # a single possible path through every cell
        return dist.reshape(p, -1).astype(np.float64).mean(axis=1)

    # Three rotating diagonal buffers (k - 2, k - 1, k). Slot i + 1 holds cell (i, k - i); slot
    # 0 and the slots just outside a diagonal's valid range hold +inf, so predecessors outside
    # the matrix are never chosen.
    bufs = [np.full((p, n + 1), _INF_CELL, dtype=np.int64) for _ in range(3)]
    prev2, prev, cur = bufs
    prev[:, 1] = _pack(np.ascontiguousarray(dist[:, 0, 0]), 1)
    for k in range(1, n + m - 1):
        lo, hi = max(0, k - m + 1), min(k, n - 1)
        ii = np.arange(lo, hi + 1)
        # Predecessors of (i, k - i): (i-1, j) and (i, j-1) on diagonal k-1, (i-1, j-1) on k-2.
        best = np.minimum(prev[:, lo : hi + 1], prev[:, lo + 1 : hi + 2])
        np.minimum(best, prev2[:, lo : hi + 1], out=best)
        cost = _unpack_cost(best)
        cost += dist[:, ii, k - ii]
        out = cur[:, lo + 1 : hi + 2]
        np.bitwise_or(_pack(cost, 0), (best & _LOW_MASK) + 1, out=out)
        cur[:, lo] = _INF_CELL
        if hi + 2 <= n:
            cur[:, hi + 2] = _INF_CELL
        prev2, prev, cur = prev, cur, prev2
    final = prev[:, n]
    return _unpack_cost(final).astype(np.float64) / (final & _LOW_MASK)


def _pair_dtw(frames: _Frames, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """DTW distances between segment pairs ``(first[k], second[k])``.

    Pairs are batched by their shape (segment lengths), the shorter segment always first, so
    each batch is one dense ``[P, n, m]`` computation.

    Args:
        frames: The prepared frames of all segments.
        first: ``[K]`` segment indices.
        second: ``[K]`` segment indices.

    Returns:
        ``[K]`` float64 distances.
    """
    out = np.empty(first.shape[0])
    if out.size == 0:
        return out
    swap = frames.lengths[first] > frames.lengths[second]
    a = np.where(swap, second, first)
    b = np.where(swap, first, second)
    n_all, m_all = frames.lengths[a], frames.lengths[b]
    shape_key = n_all * (int(m_all.max()) + 1) + m_all
    if shape_key.max() < np.iinfo(np.int16).max:
        shape_key = shape_key.astype(np.int16)  # numpy sorts small integer types by radix sort
    order = np.argsort(shape_key, kind="stable")
    bounds = np.flatnonzero(np.diff(shape_key[order])) + 1
    for group in np.split(order, bounds):
        n, m = int(n_all[group[0]]), int(m_all[group[0]])
        step = max(1, _DTW_BATCH_CELLS // (n * m))
        for s in range(0, group.size, step):
            idx = group[s : s + step]
            dist = frames.frame_distances(frames.gather(a[idx], n), frames.gather(b[idx], m))
            out[idx] = _dtw_average_cost(dist)
    return out


def _check_distance(distance: str) -> None:
    if distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {_DISTANCES}, got {distance!r}")


def _check_segments(segments: Sequence[np.ndarray]) -> None:
    """Raise ValueError unless segments are finite ``[T_i >= 1, D]`` arrays with one ``D``."""
    dim = None
    for i, seg in enumerate(segments):
        arr = np.asarray(seg)
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(
                f"segment {i} must be a [T, D] array with T >= 1 and D >= 1, got shape {arr.shape}"
            )
        if dim is None:
            dim = arr.shape[1]
        elif arr.shape[1] != dim:
            raise ValueError(
                f"all segments must have the same feature dimension: segment 0 has D={dim}, "
                f"segment {i} has D={arr.shape[1]}"
            )
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ValueError(f"segment {i} must hold finite numbers")


def dtw_distance(a: np.ndarray, b: np.ndarray, distance: str = "cosine") -> float:
    """DTW distance between two segments: the average frame distance along the DTW path.

    This is the segment distance used by :func:`abx_error`. Frame distances are cosine
    distances ``1 - cos(u, v)`` (an all-zero frame is at distance 1 from any other frame and 0
    from another all-zero frame) or euclidean distances.

    Args:
        a: ``[n, D]`` frames of the first segment.
        b: ``[m, D]`` frames of the second segment.
        distance: ``"cosine"`` or ``"euclidean"``.

    Returns:
        The summed frame distance of the minimum-cost monotonic alignment path (among equal-cost
        paths, the shortest) divided by the number of aligned frame pairs on it, in float32
        (relative error ~1e-7).
        ``dtw_distance(a, a) == 0`` up to that rounding, and the distance is symmetric.

    Raises:
        ValueError: On an unknown distance or malformed segments.
    """
    _check_distance(distance)
    _check_segments([a, b])
    frames = _Frames([a, b], distance)
    return float(_pair_dtw(frames, np.array([0]), np.array([1]))[0])


# --------------------------------------------------------------------------------------------
# ABX
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbxResult:
    """Outcome of :func:`abx_error`.

    Attributes:
        error: ABX error rate in [0, 1], averaged within cells, then over speakers, then over
            (phone A, phone B) pairs; 0.5 is chance.
        n_triplets: Number of (A, B, X) triplets scored.
        n_cells: Number of cells (phone of A, phone of B, speaker(s)) with at least one triplet.
    """

    error: float
    n_triplets: int
    n_cells: int

    def as_dict(self) -> dict[str, float | int]:
        """Return the fields as a plain ``{name: value}`` dict (e.g. for JSON logging)."""
        return asdict(self)


def _codes(values: Sequence[object]) -> tuple[np.ndarray, int]:
    """Map hashable labels to dense codes ``0..K-1`` in order of first appearance."""
    table: dict[object, int] = {}
    codes = np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int64)
    return codes, len(table)


def _cell_triplets(
    a_n: np.ndarray,
    b_n: np.ndarray,
    x_n: np.ndarray,
    same: np.ndarray,
    cap: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Enumerate or sample the triplets of every cell.

    A cell draws A from a group of ``a_n`` items, B from ``b_n`` and X from ``x_n``; when
    ``same`` is True the X group is the A group and ``X != A`` is enforced. Triplets are
    numbered ``t = (ia * nx + jx) * nb + ib`` with ``nx`` the number of admissible X per A. A
    cell with at most ``cap`` triplets keeps all of them; a larger one keeps ``cap`` distinct
    triplets drawn uniformly without replacement, cells taken in order.

    Args:
        a_n: ``[C]`` size of each cell's A group.
        b_n: ``[C]`` size of each cell's B group.
        x_n: ``[C]`` size of each cell's X group.
        same: ``[C]`` bool, True when the X group is the A group.
        cap: Maximum number of triplets per cell.
        rng: Source of the subsampling.

    Returns:
        ``(cell, ia, ib, ix)``, each ``[M]``: the cell of each triplet and the positions of its
        A, B and X inside their groups.
    """
    nx = x_n - same
    totals = a_n * nx * b_n
    # Per-triplet arithmetic in int32 when it fits: half the memory traffic of int64.
    itype = np.int32 if totals.max() < np.iinfo(np.int32).max else np.int64
    nx, b_n, totals = nx.astype(itype), b_n.astype(itype), totals.astype(itype)
    small = np.flatnonzero(totals <= cap).astype(itype)
    big = np.flatnonzero(totals > cap).astype(itype)

    small_counts = totals[small]
    cell = np.repeat(small, small_counts)
    starts = np.cumsum(small_counts, dtype=np.int64) - small_counts
    t = (np.arange(cell.size, dtype=np.int64) - np.repeat(starts, small_counts)).astype(itype)
    if big.size:
        sampled = [rng.choice(int(totals[c]), size=cap, replace=False) for c in big]
        cell = np.concatenate([cell, np.repeat(big, cap)])
        t = np.concatenate([t, np.concatenate(sampled).astype(itype)])

    nb_t, nx_t = b_n[cell], nx[cell]
    ib = t % nb_t
    rest = t // nb_t
    jx = rest % nx_t
    ia = rest // nx_t
    ix = jx + (same[cell] & (jx >= ia))  # skip X == A when X is drawn from the A group
    return cell, ia, ib, ix


def _triplet_distances(
    frames: _Frames,
    members: np.ndarray,
    g_start: np.ndarray,
    g_n: np.ndarray,
    cell_groups: tuple[np.ndarray, np.ndarray, np.ndarray],
    triplets: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """DTW distances ``d(A, X)`` and ``d(B, X)`` of every triplet, each segment pair once.

    Every segment pair lies in a pair of (phone, speaker) groups. Each group pair needed by a
    cell gets a block of ``n1 * n2`` slots in a table (groups and, inside one group, positions
    in canonical order, so ``d(u, v)`` and ``d(v, u)`` share a slot); the distinct slots used
    are found with a mark-and-count pass when the table is not much larger than the number of
    lookups, and with a sort otherwise.

    Args:
        frames: The prepared frames of all segments.
        members: ``[N]`` segment indices sorted by group.
        g_start: ``[G]`` start of each group in ``members``.
        g_n: ``[G]`` size of each group.
        cell_groups: ``(ga, gb, gx)``, each ``[C]``: the A, B and X group of each cell.
        triplets: ``(cell, ia, ib, ix)`` from :func:`_cell_triplets`.

    Returns:
        ``(d_ax, d_bx)``, each ``[M]`` float64.
    """
    ga, gb, gx = cell_groups
    cell, ia, ib, ix = triplets
    n_cells, n_groups = ga.size, g_n.size
    # Cell-level group pairs: rows [0, C) for (A, X), rows [C, 2C) for (B, X).
    g1, g2 = np.concatenate([ga, gb]), np.concatenate([gx, gx])
    gp_keys, gp_of = np.unique(
        np.minimum(g1, g2) * n_groups + np.maximum(g1, g2), return_inverse=True
    )
    gp_of = gp_of.reshape(-1)
    gp1, gp2 = gp_keys // n_groups, gp_keys % n_groups
    sizes = g_n[gp1] * g_n[gp2]
    offsets = np.cumsum(sizes) - sizes

    # Slot of a lookup in row r with positions (p, x): offsets[r] + p * n2 + x, with the roles
    # of p and x exchanged when the row's groups were swapped, and (p, x) sorted in one group.
    row_off = offsets[gp_of]
    row_n2 = g_n[gp2][gp_of]
    row_swap = g1 > g2
    row_same = g1 == g2
    mult_p = np.where(row_swap, 1, row_n2)
    mult_x = np.where(row_swap, row_n2, 1)

    def slots(rows: np.ndarray, pos: np.ndarray, pos_x: np.ndarray) -> np.ndarray:
        same = row_same[rows]
        if same.all():
            pos, pos_x = np.minimum(pos, pos_x), np.maximum(pos, pos_x)
        elif same.any():
            pos, pos_x = (
                np.where(same, np.minimum(pos, pos_x), pos),
                np.where(same, np.maximum(pos, pos_x), pos_x),
            )
        return row_off[rows] + pos * mult_p[rows] + pos_x * mult_x[rows]

    slot_ax = slots(cell, ia, ix)
    slot_bx = slots(cell + n_cells, ib, ix)

    table_size = int(sizes.sum())
    if table_size <= _DENSE_TABLE_FACTOR * 2 * cell.size:
        used = np.zeros(table_size, dtype=bool)
        used[slot_ax] = True
        used[slot_bx] = True
        uniq = np.flatnonzero(used)
        rank = np.cumsum(used) - 1
        inv_ax, inv_bx = rank[slot_ax], rank[slot_bx]
    else:
        uniq, inverse = np.unique(np.concatenate([slot_ax, slot_bx]), return_inverse=True)
        inverse = inverse.reshape(-1)
        inv_ax, inv_bx = inverse[: cell.size], inverse[cell.size :]

    u_pid = np.searchsorted(offsets, uniq, side="right") - 1
    local = uniq - offsets[u_pid]
    u_n2 = g_n[gp2[u_pid]]
    first = members[g_start[gp1[u_pid]] + local // u_n2]
    second = members[g_start[gp2[u_pid]] + local % u_n2]
    dist = _pair_dtw(frames, first, second)
    return dist[inv_ax], dist[inv_bx]


def _group_means(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` ``[C]`` per distinct row of ``keys`` ``[C, k]``: (unique rows, means)."""
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    sums = np.bincount(inverse, weights=values, minlength=uniq.shape[0])
    counts = np.bincount(inverse, minlength=uniq.shape[0])
    return uniq, sums / counts


def abx_error(
    segments: Sequence[np.ndarray],
    phones: Sequence[int],
    speakers: Sequence[str | int],
    mode: str = "within",
    distance: str = "cosine",
    max_triplets_per_cell: int = 200,
    seed: int = 0,
    *,
    max_x_speakers: int | None = 5,
) -> AbxResult:
    """ABX phone discriminability of segment representations (ZeroSpeech-style, no context).

    For a triplet (A, B, X) where A and X are occurrences of the same phone and B an occurrence
    of another phone, the representation succeeds if ``d(A, X) < d(B, X)`` (score 1, 0.5 on a
    tie); the ABX error is one minus the score. ``d`` is :func:`dtw_distance`.

    * ``mode="within"``: A, B and X come from one speaker; a cell is (phone of A, phone of B,
      speaker) and A and X are different items.
    * ``mode="across"``: A and B come from one speaker and X from another; a cell is (phone of
      A, phone of B, speaker of A and B, speaker of X). For each (phone A, phone B, speaker of A
      and B), at most ``max_x_speakers`` X speakers are drawn at random (as ZeroSpeech's
      ``max_x_across``), which keeps the cost from growing with the square of the number of
      speakers.

    The error is averaged within each cell, then over speakers (for ``"across"``: first over the
    X speaker, then over the A/B speaker), then over ordered (phone A, phone B) pairs, so that
    frequent phones and talkative speakers do not dominate. Cells with more than
    ``max_triplets_per_cell`` triplets are subsampled uniformly without replacement using
    ``np.random.default_rng(seed)``, so the result is deterministic for a given seed. Each
    distinct segment pair's DTW distance is computed once, in float32.

    Args:
        segments: ``N`` arrays ``[T_i, D]`` (``T_i >= 1``): the frames of one phone occurrence.
        phones: ``[N]`` integer phone label of each segment.
        speakers: ``[N]`` speaker label (any hashable, e.g. str or int) of each segment.
        mode: ``"within"`` or ``"across"`` speakers.
        distance: Frame distance, ``"cosine"`` or ``"euclidean"``.
        max_triplets_per_cell: Maximum number of triplets scored per cell.
        seed: Seed of the subsampling.
        max_x_speakers: ``"across"`` only: maximum number of X speakers per (phone A, phone B,
            speaker of A and B); None keeps every other speaker.

    Returns:
        The averaged error with the number of triplets and cells it is based on.

    Raises:
        ValueError: On mismatched lengths, malformed segments, unknown mode or distance, or if
            the data contain no valid triplet (e.g. no speaker with two occurrences of a phone
            and one of another phone for ``"within"``).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    _check_distance(distance)
    cap = check_positive_int(max_triplets_per_cell, "max_triplets_per_cell")
    if max_x_speakers is not None:
        max_x_speakers = check_positive_int(max_x_speakers, "max_x_speakers")
    if not len(segments) == len(phones) == len(speakers):
        raise ValueError(
            f"segments, phones and speakers must have the same length, got {len(segments)}, "
            f"{len(phones)} and {len(speakers)}"
        )
    if len(segments) == 0:
        raise ValueError("no segments given")
    phone_arr = np.asarray(phones)
    if phone_arr.ndim != 1 or not np.issubdtype(phone_arr.dtype, np.integer):
        raise ValueError("phones must be a sequence of integers, one per segment")
    _check_segments(segments)
    rng = np.random.default_rng(seed)

    phone_code, _ = _codes(phone_arr.tolist())
    spk_code, n_spk = _codes(speakers)

    # Groups = (phone, speaker); members sorted by group so each group is a contiguous slice.
    group_of = phone_code * n_spk + spk_code
    members = np.argsort(group_of, kind="stable")
    group_ids, g_start, g_n = np.unique(group_of[members], return_index=True, return_counts=True)
    g_phone, g_spk = group_ids // n_spk, group_ids % n_spk

    ga, gb, gx = _abx_cells(g_phone, g_spk, g_n, mode, max_x_speakers, rng)
    if ga.size == 0:
        need = (
            "a speaker with two occurrences of one phone and one of another"
            if mode == "within"
            else "two speakers sharing a phone, one of whom also has another phone"
        )
        raise ValueError(f"no valid ABX triplet in the data for mode={mode!r}: need {need}")

    triplets = _cell_triplets(g_n[ga], g_n[gb], g_n[gx], ga == gx, cap, rng)
    frames = _Frames(segments, distance)
    d_ax, d_bx = _triplet_distances(frames, members, g_start, g_n, (ga, gb, gx), triplets)
    err = (d_ax > d_bx) + 0.5 * (d_ax == d_bx)
    cell = triplets[0]

    n_cells = ga.size
    cell_err = np.bincount(cell, weights=err, minlength=n_cells) / np.bincount(
        cell, minlength=n_cells
    )
    ph_a, ph_b = g_phone[ga], g_phone[gb]
    if mode == "across":  # average over the X speaker first
        keys, cell_err = _group_means(np.stack([ph_a, ph_b, g_spk[ga]], axis=1), cell_err)
        ph_a, ph_b = keys[:, 0], keys[:, 1]
    _, pair_err = _group_means(np.stack([ph_a, ph_b], axis=1), cell_err)  # over speakers
    return AbxResult(error=float(pair_err.mean()), n_triplets=int(err.size), n_cells=int(n_cells))


def _abx_cells(
    g_phone: np.ndarray,
    g_spk: np.ndarray,
    g_n: np.ndarray,
    mode: str,
    max_x_speakers: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """List the ABX cells as (A group, B group, X group) over (phone, speaker) groups.

    Args:
        g_phone: ``[G]`` phone code of each group.
        g_spk: ``[G]`` speaker code of each group.
        g_n: ``[G]`` number of segments in each group.
        mode: ``"within"`` (X group = A group, which needs two items) or ``"across"`` (X group:
            A's phone, another speaker).
        max_x_speakers: ``"across"`` only: at most this many X groups per (A group, B group),
            drawn at random; None keeps all.
        rng: Source of the X speaker draw.

    Returns:
        ``(ga, gb, gx)``, each ``[C]``, ordered by (A/B speaker, A group, B group) and, for
        ``"across"``, X group.
    """
    # (A group, B group): same speaker, different phones (groups of one speaker differ in phone).
    pair_a, pair_b = [], []
    by_spk = np.argsort(g_spk, kind="stable")
    for groups in np.split(by_spk, np.flatnonzero(np.diff(g_spk[by_spk])) + 1):
        ga, gb = np.meshgrid(groups, groups, indexing="ij")
        keep = ga != gb
        pair_a.append(ga[keep])
        pair_b.append(gb[keep])
    ga, gb = np.concatenate(pair_a), np.concatenate(pair_b)

    if mode == "within":
        enough = g_n[ga] >= 2  # A and X both come from the A group
        return ga[enough], gb[enough], ga[enough]

    # X groups: the groups of A's phone other than A's own, i.e. the other speakers.
    by_phone = np.argsort(g_phone, kind="stable")
    position = np.empty(by_phone.size, dtype=np.int64)
    position[by_phone] = np.arange(by_phone.size)
    n_phone_groups = np.bincount(g_phone)
    phone_start = np.cumsum(n_phone_groups) - n_phone_groups
    n_x = n_phone_groups[g_phone[ga]] - 1  # candidate X groups per (A, B)
    pair = np.repeat(np.arange(ga.size), n_x)
    k = np.arange(pair.size) - np.repeat(np.cumsum(n_x) - n_x, n_x)
    own = position[ga] - phone_start[g_phone[ga]]  # A's own rank among its phone's groups
    k += k >= own[pair]  # skip it
    gx = by_phone[phone_start[g_phone[ga]][pair] + k]
    if max_x_speakers is not None:
        # Keep the max_x_speakers candidates with the smallest random keys of each (A, B).
        order = np.lexsort((rng.random(pair.size), pair))
        first_of_pair = np.searchsorted(pair, pair)  # pair is sorted
        chosen = np.sort(order[np.arange(pair.size) - first_of_pair < max_x_speakers])
        pair, gx = pair[chosen], gx[chosen]
    return ga[pair], gb[pair], gx
