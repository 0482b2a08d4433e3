import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm.audio import SAMPLE_RATE, AudioReader, load_audio, resample, save_audio
from speechlm.errors import AudioError


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_load_formats(wav_file, fmt):
    p = wav_file(1.0, name=f"a.{fmt}")
    x = load_audio(p)
    assert x.dtype == torch.float32 and x.dim() == 1
    assert abs(x.numel() - SAMPLE_RATE) <= 1


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without mp3")
def test_load_mp3(tmp_path):
    x = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220).astype(np.float32) * 0.3
    sf.write(tmp_path / "a.mp3", x, 16000, format="MP3")
    y = load_audio(tmp_path / "a.mp3")
    assert abs(y.numel() - 16000) < 1200 and float(y.abs().max()) > 0.1


def test_stereo_is_mixed_to_mono(tmp_path):
    left = np.full(1600, 0.5, np.float32)
    right = np.full(1600, -0.1, np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), SAMPLE_RATE, subtype="FLOAT")
    x = load_audio(tmp_path / "s.wav")
    assert torch.allclose(x, torch.full((1600,), 0.2), atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampled_length_and_pitch(wav_file, sr):
    x = load_audio(wav_file(1.0, sr=sr, freq=200.0))
    assert x.numel() == SAMPLE_RATE
    ref = resample(torch.from_numpy(sf.read(wav_file(1.0, sr=sr, freq=200.0))[0]).float(), sr)
    assert torch.allclose(x, ref, atol=1e-5)


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000])
def test_chunked_reads_equal_whole_read(wav_file, sr):
    r = AudioReader(wav_file(3.3, sr=sr))
    whole = r.read()
    cuts = [0, 1, 777, 16000, 16001, 30000, r.num_samples]
    parts = torch.cat([r.read(a, b) for a, b in zip(cuts[:-1], cuts[1:])])
    assert parts.shape == whole.shape
    assert torch.allclose(parts, whole, atol=1e-5)


def test_missing_file():
    with pytest.raises(AudioError, match="audio file not found: /no/such.wav"):
        load_audio("/no/such.wav")


def test_corrupt_file(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"RIFF\x00\x00garbage that is not audio" * 10)
    with pytest.raises(AudioError, match=r"cannot read .*bad.wav as audio"):
        load_audio(p)


def test_text_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(AudioError, match="as audio"):
        load_audio(p)


def test_empty_audio(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="contains no audio samples"):
        load_audio(p)


def test_nan_audio(tmp_path):
    x = np.zeros(4000, np.float32)
    x[100] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(p, x, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(p)


def test_too_short(tmp_path):
    p = tmp_path / "short.wav"
    sf.write(p, np.zeros(160, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match=r"10.0 ms long, shorter than one analysis frame"):
        load_audio(p, min_samples=400)


def test_save_is_atomic_and_round_trips(tmp_path):
    x = torch.linspace(-0.5, 0.5, 8000)
    save_audio(tmp_path / "o.wav", x)
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]
    y = load_audio(tmp_path / "o.wav")
    assert torch.allclose(x, y, atol=1 / 32768 * 2)
