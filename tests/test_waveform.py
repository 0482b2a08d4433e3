"""The harmonic-plus-noise waveform stage (speechlm.waveform) and its trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import ModelError
from speechlm.waveform import HOP, HarmonicNoise, WaveformConfig, WaveformModel, upsample

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = WaveformConfig(channels=16, blocks=2, n_harmonics=8, n_noise=8)


def _peak_hz(y: np.ndarray, sr: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * sr / len(y))


def test_upsample_puts_frame_i_at_sample_i_hop():
    x = torch.tensor([[[0.0, 1.0, 3.0]]])
    y = upsample(x)
    assert y.shape == (1, 1, 3 * HOP)
    assert float(y[0, 0, 0]) == 0.0 and float(y[0, 0, HOP]) == 1.0
    assert float(y[0, 0, 2 * HOP]) == 3.0 and float(y[0, 0, -1]) == 3.0  # last frame held
    assert abs(float(y[0, 0, HOP // 2]) - 0.5) < 1e-6


def test_harmonic_k_sounds_at_k_times_f0():
    m = HarmonicNoise(SMALL)
    n = 100
    f0 = torch.full((1, n), 180.0)
    for k in (1, 3):
        amps = torch.zeros(1, SMALL.n_harmonics, n)
        amps[:, k - 1] = 0.5
        y = m.harmonic(amps, f0)[0].numpy()
        assert y.shape == (n * HOP,)
        assert abs(_peak_hz(y) - k * 180.0) < 3.0
        assert abs(np.abs(y).max() - 0.5) < 0.01


def test_controls_mute_unvoiced_frames_and_harmonics_above_nyquist():
    m = HarmonicNoise(SMALL)
    f0 = torch.tensor([[0.0, 100.0, 2500.0, 0.0]])
    with torch.no_grad():
        amps, noise = m.controls(torch.randn(1, 4, SMALL.n_mels), f0)
    assert amps.shape == (1, 8, 4) and noise.shape == (1, 8, 4)
    assert float(amps[0, :, 0].abs().max()) == 0.0 and float(amps[0, :, 3].abs().max()) == 0.0
    assert bool((amps[0, :, 1] > 0).all())  # 8 x 100 Hz < 8 kHz: all sound
    # at 2.5 kHz only harmonics 1-3 lie below Nyquist (3 x 2.5 = 7.5 kHz)
    assert bool((amps[0, :3, 2] > 0).all()) and float(amps[0, 3:, 2].abs().max()) == 0.0
    assert bool((noise > 0).all())


def test_noise_follows_its_filter():
    m = HarmonicNoise(SMALL)
    n = 60
    g = torch.Generator().manual_seed(0)
    silent = m.noise(torch.zeros(1, 8, n), n * HOP, g)
    assert silent.shape == (1, n * HOP) and float(silent.abs().max()) < 1e-6
    low = torch.zeros(1, 8, n)
    low[:, :2] = 1.0  # only the lowest bands open
    y = m.noise(low, n * HOP, torch.Generator().manual_seed(0))[0].numpy()
    spec = np.abs(np.fft.rfft(y)) ** 2
    half = len(spec) // 2
    assert spec[:half // 2].sum() > 20 * spec[half:].sum()


def test_stage_round_trip_and_seeded_output(tmp_path):
    torch.manual_seed(0)
    stage = WaveformModel(HarmonicNoise(SMALL), {"steps": 3})
    mel = torch.randn(40, SMALL.n_mels)
    f0 = np.r_[np.zeros(10), np.full(30, 140.0)]
    a = stage.synthesize(mel, f0, seed=1)
    assert a.shape == (40 * HOP,) and torch.isfinite(a).all()
    assert torch.equal(a, stage.synthesize(mel, f0, seed=1))
    stage.save(tmp_path / "w")
    back = WaveformModel.load(tmp_path / "w")
    assert back.training["steps"] == 3
    assert torch.allclose(back.synthesize(mel, f0, seed=1), a, atol=1e-6)
    stage.save(tmp_path / "h", half=True)
    assert (tmp_path / "h" / "model.safetensors").stat().st_size < \
        (tmp_path / "w" / "model.safetensors").stat().st_size


def test_voiced_noise_cut_mutes_low_noise_in_voiced_frames_only():
    torch.manual_seed(0)
    stage = WaveformModel(HarmonicNoise(SMALL))
    n = 60
    mel = torch.randn(n, SMALL.n_mels)
    f0 = np.r_[np.zeros(20), np.full(40, 140.0)]
    plain = stage.synthesize(mel, f0, seed=3)
    assert torch.equal(stage.synthesize(mel, f0, seed=3, voiced_noise_cut=0.0), plain)
    # SMALL's 8 bands sit at 0, 1143, 2286, ... Hz: 1500 Hz mutes the first two
    assert int((stage.model.band_hz() < 1500).sum()) == 2
    cut = stage.synthesize(mel, f0, seed=3, voiced_noise_cut=1500.0)
    # unvoiced frames keep their noise (up to the noise STFT's reach of 512 samples)
    edge = 20 * HOP - 512
    assert torch.allclose(cut[:edge], plain[:edge], atol=1e-6)
    # what was taken away from the voiced frames is low noise: the harmonics are untouched
    gone = (plain - cut)[22 * HOP:].numpy()
    assert float(np.abs(gone).max()) > 1e-4
    spec = np.abs(np.fft.rfft(gone)) ** 2
    hz = np.fft.rfftfreq(len(gone), 1 / 16000)
    assert spec[hz < 2286].sum() > 20 * spec[hz > 3000].sum()


def test_synthesize_refuses_bad_input():
    stage = WaveformModel(HarmonicNoise(SMALL))
    with pytest.raises(ModelError, match="log-mel must be"):
        stage.synthesize(torch.zeros(10, 3), np.zeros(10))
    with pytest.raises(ModelError, match="no frames"):
        stage.synthesize(torch.zeros(0, SMALL.n_mels), np.zeros(0))
    with pytest.raises(ModelError, match="finite"):
        stage.synthesize(torch.full((5, SMALL.n_mels), float("nan")), np.zeros(5))


def test_stft_loss_is_zero_on_the_target_and_grows_with_noise():
    from speechlm.train.waveform import stft_loss

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4000, generator=g)
    assert float(stft_loss(x, x, [512, 128])) < 1e-5
    near = stft_loss(x + 0.01 * torch.randn(2, 4000, generator=g), x, [512, 128])
    far = stft_loss(x + 1.0 * torch.randn(2, 4000, generator=g), x, [512, 128])
    assert 0 < float(near) < float(far)


def test_vocoder_recipe_kind_picks_the_trainer(tmp_path):
    from speechlm.errors import DataError
    from speechlm.train.vocoder import load_config

    cfg = load_config("configs/vocoder/hn-tiny.toml")
    assert cfg["model"]["kind"] == "waveform" and "crop_frames" in cfg["train"]
    assert "tokenizer" in load_config("configs/vocoder/tiny.toml")["data"]
    with pytest.raises(DataError, match="model.kind"):
        load_config("configs/vocoder/hn-tiny.toml", ["--model.kind=gan"])
    with pytest.raises(DataError, match="too short"):
        load_config("configs/vocoder/hn-tiny.toml", ["--train.crop_frames=3"])


def test_training_resumes_and_exports_a_stage(small_corpus, tmp_path):
    from speechlm.train.vocoder import load_config, train_vocoder

    over = [f"--data.corpus={small_corpus}", f"--data.cache={tmp_path / 'cache'}",
            f"--train.out={tmp_path / 'run'}"]
    run = train_vocoder(load_config("configs/vocoder/hn-tiny.toml", over), progress=False)
    stage = WaveformModel.load(run / "model")
    assert stage.training["steps"] >= 2 and stage.training["train_utterances"] > 0
    # a second call resumes at the end: nothing left to do, same weights
    before = (run / "state.safetensors").read_bytes()
    train_vocoder(load_config("configs/vocoder/hn-tiny.toml", over), progress=False)
    assert (run / "state.safetensors").read_bytes() == before
    lines = (run / "log.jsonl").read_text().splitlines()
    assert any('"valid_total"' in x or "valid" in x for x in lines)


@pytest.mark.parametrize("chunk", [None, 1, 5 * 160 * 3])  # all at once; a frame, 3 frames
def test_blockwise_harmonics_equal_the_per_sample_sum(chunk, monkeypatch):
    """The fast path (per-frame products, silent frames and harmonics skipped, a few frames at
    a time) is the plain sum over harmonics of per-sample interpolated amplitudes times
    sin(k phi)."""
    import math

    import speechlm.waveform

    if chunk is not None:
        monkeypatch.setattr(speechlm.waveform, "SINE_CHUNK", chunk)
    m = HarmonicNoise(SMALL)
    g = torch.Generator().manual_seed(5)
    n = 12
    f0 = torch.rand(2, n, generator=g) * 200 + 90
    amps = torch.rand(2, SMALL.n_harmonics, n, generator=g)
    amps[0, :, 3:7] = 0.0  # a silent stretch
    amps[:, 5:] = 0.0  # harmonics that never sound
    f = upsample(f0[:, None].double())[:, 0]
    cyc = torch.cumsum(f / 16000, -1)
    phi = 2 * math.pi * (cyc - torch.floor(cyc))
    k = torch.arange(1, SMALL.n_harmonics + 1).double()
    dense = (upsample(amps.double()) * torch.sin(k[None, :, None] * phi[:, None])).sum(1)
    assert torch.allclose(m.harmonic(amps, f0).double(), dense, atol=1e-4)
