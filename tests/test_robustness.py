"""Unit robustness: Levenshtein, UED, the sox / noise perturbations and the eval tokenizer UED."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from speechlm.errors import AudioError, DataError, ModelError
from speechlm.eval.robustness import (
    NOISE_SNR_DB,
    PERTURBATIONS,
    add_noise,
    check_perturbation,
    dedup_ids,
    levenshtein,
    measure_ued,
    perturb,
    perturbation_option,
    perturbed_copy,
    unit_edit_distance,
)

SR = 16_000
needs_sox = pytest.mark.skipif(shutil.which("sox") is None,
                               reason="sox missing: apt-get install sox (scripts/setup.sh)")


def harmonic(seconds: float = 2.0, f0: float = 180.0, sr: int = SR) -> np.ndarray:
    """A steady harmonic tone (vowel-like) with a slow amplitude wobble."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
    return (0.2 * x * (0.7 + 0.3 * np.sin(2 * np.pi * 1.5 * t))).astype(np.float32)


def median_f0(wav: np.ndarray) -> float:
    from speechlm.eval.judges import f0_track

    f0 = f0_track(wav, SR)
    return float(np.median(f0[f0 > 0]))


# --------------------------------------------------------------------------------------------
# edit distance and UED
# --------------------------------------------------------------------------------------------


def codes(s: str) -> np.ndarray:
    return np.frombuffer(s.encode(), dtype=np.uint8).astype(np.int64)


@pytest.mark.parametrize(("a", "b", "d"), [
    ("", "", 0), ("abc", "", 3), ("", "ab", 2), ("abc", "abc", 0),
    ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("abc", "xyz", 3), ("ab", "ba", 2),
    ("abcdef", "azced", 3), ("a", "aaaa", 3),
])
def test_levenshtein_known_cases(a, b, d):
    assert levenshtein(codes(a), codes(b)) == d
    assert levenshtein(codes(b), codes(a)) == d
    assert levenshtein(list(codes(a)), tuple(codes(b))) == d  # plain sequences too


def test_levenshtein_matches_a_reference_implementation():
    rapidfuzz = pytest.importorskip("rapidfuzz.distance",
                                    reason="rapidfuzz (a jiwer dependency) missing")
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.integers(0, 5, rng.integers(0, 30))
        b = rng.integers(0, 5, rng.integers(0, 30))
        assert levenshtein(a, b) == rapidfuzz.Levenshtein.distance(a.tolist(), b.tolist())


def test_dedup_ids():
    assert dedup_ids([5, 5, 7, 7, 7, 5]).tolist() == [5, 7, 5]
    assert dedup_ids([]).tolist() == []


def test_ued_values():
    seq = np.array([1, 1, 2, 3, 3, 3, 4, 5])
    assert unit_edit_distance(seq, seq) == 0.0
    assert unit_edit_distance(seq, dedup_ids(seq)) == 0.0  # runs do not count
    assert unit_edit_distance([1, 2, 3, 4], [5, 6, 7, 8]) == 1.0  # disjoint, same length
    assert unit_edit_distance([1, 2, 3, 4, 5], [1, 2, 9, 4, 5]) == pytest.approx(1 / 5)
    assert unit_edit_distance([1, 2, 3, 4], [1, 2, 4]) == pytest.approx(1 / 4)
    assert unit_edit_distance([1, 2], [1, 2, 3, 4, 5, 6]) == pytest.approx(2.0)  # can pass 1
    # normalised by the first sequence, deduplicated: [1 2] vs [1 2 3 4] -> 2 / 2
    assert unit_edit_distance([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="reference unit sequence is empty"):
        unit_edit_distance([], [1])


# --------------------------------------------------------------------------------------------
# perturbations do what they claim
# --------------------------------------------------------------------------------------------


@needs_sox
@pytest.mark.parametrize(("name", "cents"), [("pitch+300", 300), ("pitch-300", -300),
                                             ("pitch+400", 400), ("pitch-400", -400)])
def test_pitch_shift_moves_f0_by_the_asked_ratio(name, cents):
    x = harmonic()
    y = perturb(x, SR, name)
    assert abs(len(y) - len(x)) <= 0.01 * len(x)  # duration kept
    ratio = median_f0(y) / median_f0(x)
    assert ratio == pytest.approx(2 ** (cents / 1200), rel=0.02)


@needs_sox
@pytest.mark.parametrize(("name", "factor"), [("tempo0.9", 0.9), ("tempo1.1", 1.1)])
def test_tempo_changes_duration_not_pitch(name, factor):
    x = harmonic()
    y = perturb(x, SR, name)
    assert len(y) / len(x) == pytest.approx(1 / factor, rel=0.01)
    assert median_f0(y) == pytest.approx(median_f0(x), rel=0.02)


@needs_sox
def test_reverb_spreads_energy_into_the_silence_after_a_burst():
    x = np.zeros(SR, np.float32)
    x[: SR // 10] = harmonic(0.1)  # 100 ms of sound, then silence
    y = perturb(x, SR, "reverb")
    assert len(y) == len(x)  # the tail past the input is cut
    late = slice(int(0.15 * SR), int(0.4 * SR))
    burst_power = float(np.mean(x[: SR // 10] ** 2))
    assert float(np.mean(y[late] ** 2)) > 1e-3 * burst_power  # ~-30 dB or more of reverb tail
    assert float(np.mean(x[late] ** 2)) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_is_at_exactly_20_db_snr(seed):
    x = harmonic()
    y = perturb(x, SR, "noise20dB", seed=seed)
    noise = y.astype(np.float64) - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(NOISE_SNR_DB, abs=0.5)
    assert snr == pytest.approx(20.0, abs=0.01)
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.05  # white: no correlation
    np.testing.assert_array_equal(y, perturb(x, SR, "noise20dB", seed=seed))
    assert not np.array_equal(y, perturb(x, SR, "noise20dB", seed=seed + 10))


@pytest.mark.parametrize("name,snr", [("noise10dB", 10.0), ("noise-5dB", -5.0),
                                      ("noise12.5dB", 12.5)])
def test_noise_at_any_snr_by_name(name, snr):
    """noise<SNR>dB: white noise at that SNR (what eval resynth --reference-perturb takes)."""
    x = harmonic()
    assert check_perturbation(name) == name
    noise = perturb(x, SR, name, seed=3).astype(np.float64) - x
    assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2)) == \
        pytest.approx(snr, abs=0.01)
    # noise20dB spelled either way is the same draw
    np.testing.assert_array_equal(perturb(x, SR, "noise20dB", seed=3), add_noise(x, 20.0, 3))


def test_bad_perturbation_input(monkeypatch):
    with pytest.raises(ValueError, match="unknown perturbation 'chorus'"):
        perturb(harmonic(0.2), SR, "chorus")
    for bad in ("noise", "noisedB", "noise10", "noise1e3dB", "noise 10dB", "noise10db"):
        with pytest.raises(ValueError, match=r"noise<SNR>dB"):
            check_perturbation(bad)
    wav = torch.from_numpy(harmonic(0.2))
    assert perturbed_copy(wav, SR, None, 0) is wav
    np.testing.assert_array_equal(perturbed_copy(wav, SR, "noise5dB", 7).numpy(),
                                  perturb(wav.numpy(), SR, "noise5dB", seed=7))
    assert perturbation_option(None, "--x") is None and perturbation_option("", "--x") is None
    assert perturbation_option("reverb", "--x") == "reverb"
    with pytest.raises(DataError, match=r"^--x: unknown perturbation 'chorus'"):
        perturbation_option("chorus", "--x")
    with pytest.raises(AudioError, match="silent"):
        add_noise(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="mono waveform"):
        perturb(np.zeros((2, 100), np.float32), SR, "reverb")
    monkeypatch.setattr("speechlm.eval.robustness.shutil.which", lambda _: None)
    with pytest.raises(ModelError, match="need sox"):
        perturb(harmonic(0.2), SR, "reverb")


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------


@needs_sox
def test_measure_ued_with_invariant_and_sensitive_encoders():
    wavs = [harmonic(1.0, f0) for f0 in (150.0, 200.0)]
    res = measure_ued(lambda w: np.array([1, 2, 3]), wavs, SR)  # ignores the audio
    assert [r.perturbation for r in res] == list(PERTURBATIONS)
    assert all(r.mean == 0.0 and r.values == (0.0, 0.0) for r in res)

    def loudness(w: np.ndarray) -> np.ndarray:  # 8 coarse levels of the frame RMS
        frames = w[: len(w) // 320 * 320].reshape(-1, 320)
        return np.minimum((np.sqrt((frames**2).mean(1)) * 80).astype(int), 7)

    (noise,) = measure_ued(loudness, wavs, SR, ("noise20dB",))
    assert 0.0 <= noise.mean <= 1.0 and len(noise.values) == 2
    with pytest.raises(ValueError, match="unknown perturbation"):
        measure_ued(loudness, wavs, SR, ("pitch+1200",))
    with pytest.raises(ValueError, match="at least one clip"):
        measure_ued(loudness, [], SR)


@needs_sox
def test_bundled_tokenizer_units_change_under_pitch_shift():
    import torch

    from speechlm.tokenizer import Tokenizer

    tok = Tokenizer.load("mfcc-k100")
    assert tok.sample_rate == SR
    x = harmonic(1.5, 160.0)

    def encode(w: np.ndarray) -> np.ndarray:
        return tok.encode(torch.from_numpy(w)[None])[0].numpy()

    assert unit_edit_distance(encode(x), encode(x.copy())) == 0.0
    assert unit_edit_distance(encode(x), encode(perturb(x, SR, "pitch+400"))) > 0.1


@pytest.mark.slow
@needs_sox
def test_eval_tokenizer_reports_ued(small_corpus, tmp_path, capsys):
    from speechlm.cli import main

    code = main(["-q", "eval", "tokenizer", "--corpus", str(small_corpus), "--ued-utterances",
                 "2", "--json", str(tmp_path / "r.json")])
    md = capsys.readouterr().out
    assert code == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["ued_utterances"] == 2 and list(rep["ued"]) == list(PERTURBATIONS)
    assert all(0.0 < v < 3.0 for v in rep["ued"].values())
    assert "| tokenizer | data | utterances | pitch+300 |" in md
    code = main(["-q", "eval", "tokenizer", "--corpus", str(small_corpus), "--no-ued",
                 "--format", "json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 0 and rep["ued"] == {} and rep["ued_utterances"] == 0
