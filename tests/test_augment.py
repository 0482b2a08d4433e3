"""Each augmentation changes the audio the way it claims, deterministically from a seed."""

import dataclasses

import numpy as np
import pytest
import torch

from speechlm.data.augment import (
    AugmentConfig,
    Augmenter,
    add_noise,
    babble,
    codec,
    coloured_noise,
    decay_time,
    gain_and_clip,
    lowpass,
    mic_eq,
    power,
    reverberate,
    room_impulse_responses,
    telephone,
)

SR = 16000


def tone(seconds, sr, freq, seed):
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(freq * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 2.3 * t))
    return (x + np.random.default_rng(seed).normal(0, 0.01, len(t))).astype(np.float32)


def speechy(b=4, seconds=1.0, seed=0):
    """Batch [B, T] of harmonic tones with an amplitude envelope and a little noise."""
    return torch.stack([torch.from_numpy(tone(seconds, SR, freq=110 + 40 * i, seed=seed + i))
                        for i in range(b)])


def band_energy(x, lo, hi):
    spec = torch.fft.rfft(x).abs().pow(2)
    f = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    return spec[..., (f >= lo) & (f < hi)].sum(-1) / spec.sum(-1)


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0])
def test_rir_decay_time_matches_request(rt60):
    g = torch.Generator().manual_seed(0)
    rir = room_impulse_responses(torch.tensor([rt60]), torch.tensor([0.0]), SR, g)
    measured = decay_time(rir[0])
    assert abs(measured - rt60) / rt60 < 0.25, measured


def test_reverberation_raises_decay_time_of_a_click():
    x = torch.zeros(2, SR)
    x[:, 100] = 1.0
    dry = decay_time(x[0, 100:])
    g = torch.Generator().manual_seed(1)
    rir = room_impulse_responses(torch.tensor([0.3, 0.9]), torch.tensor([0.0, 0.0]), SR, g)
    wet = reverberate(x, rir)
    t = [decay_time(wet[i, 100:]) for i in range(2)]
    assert dry < 0.01 and 0.2 < t[0] < 0.4 and 0.65 < t[1] < 1.15 and t[1] > t[0]


@pytest.mark.parametrize("snr", [5.0, 12.5, 30.0])
def test_noise_lands_at_the_asked_snr(snr):
    x = speechy()
    g = torch.Generator().manual_seed(0)
    for noise in (coloured_noise(x.shape, torch.tensor([0.0, 1.0, 2.0, 1.5]), g),
                  babble(x, 3, g)):
        y = add_noise(x, noise, torch.full((4,), snr))
        got = 10 * torch.log10(power(x) / power(y - x))
        assert torch.allclose(got, torch.full((4,), snr), atol=0.5), got


def test_noise_colour():
    g = torch.Generator().manual_seed(0)
    n = coloured_noise((2, SR), torch.tensor([0.0, 2.0]), g)
    low = band_energy(n, 0, 500)
    assert low[0] < 0.1 and low[1] > 0.8  # white is flat, brown is mostly low


def test_lowpass_removes_energy_above_cutoff():
    x = coloured_noise((3, SR), torch.zeros(3), torch.Generator().manual_seed(0))
    cut = torch.tensor([2500.0, 4000.0, 7000.0])
    y = lowpass(x, cut)
    for i in range(3):
        assert band_energy(y[i], float(cut[i]), SR / 2) < 1e-6
        assert band_energy(y[i], 0, float(cut[i]) - 100) > 0.98


def test_telephone_band():
    x = coloured_noise((2, SR), torch.ones(2), torch.Generator().manual_seed(0))
    y = telephone(x)
    assert float(band_energy(y, 0, 300).max()) < 1e-6
    assert float(band_energy(y, 3400, SR / 2).max()) < 1e-6
    assert float(band_energy(y, 400, 3300).min()) > 0.9


def test_eq_changes_the_spectrum_within_bounds():
    x = coloured_noise((2, SR), torch.zeros(2), torch.Generator().manual_seed(0))
    y = mic_eq(x, torch.Generator().manual_seed(0), max_db=6.0)
    ratio = torch.fft.rfft(y).abs() / torch.fft.rfft(x).abs().clamp(min=1e-9)
    db = 20 * torch.log10(ratio[:, 10:])
    assert db.abs().max() < 3 * 6.0 + 1.6 and db.std() > 0.5


def test_gain_and_clip():
    x = speechy(2)
    y = gain_and_clip(x, torch.tensor([6.0, -6.0]))
    assert torch.allclose(y[0].abs().max(), 10 ** (6 / 20) * x[0].abs().max(), rtol=1e-5)
    z = gain_and_clip(x, torch.zeros(2), torch.tensor([0.5, 1.0]))
    assert torch.isclose(z[0].abs().max(), 0.5 * x[0].abs().max(), rtol=1e-5)
    assert torch.equal(z[1], x[1])


@pytest.mark.parametrize("fmt", ["ogg", "mp3"])
def test_codec_is_lossy_and_keeps_length(fmt):
    import soundfile as sf

    if fmt == "mp3" and "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without MP3")
    x = speechy(1)[0].numpy()
    y = codec(x, fmt)
    assert y.shape == x.shape and not np.array_equal(x, y)
    assert np.corrcoef(x[2000:-2000], y[2000:-2000])[0, 1] > 0.5 or fmt == "mp3"


def test_augmenter_deterministic_and_seed_dependent():
    x = speechy(6, 0.5)
    cfg = AugmentConfig(p_reverb=1.0, p_noise=1.0, p_babble=0.5, p_eq=0.5, p_bandlimit=0.5,
                        p_telephone=0.3, p_clip=0.5)
    aug = Augmenter(cfg)
    a, b, c = aug(x, seed=1), aug(x, seed=1), aug(x, seed=2)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()


def test_augmenter_keeps_padding_zero_and_identity_config():
    x = speechy(3, 0.5)
    lengths = torch.tensor([8000, 5000, 3000])
    x = x * (torch.arange(8000)[None] < lengths[:, None])
    out = Augmenter(AugmentConfig(p_reverb=1, p_noise=1, p_babble=1))(x, 0, lengths)
    assert out[1, 5000:].abs().max() == 0 and out[2, 3000:].abs().max() == 0
    off = AugmentConfig(p_reverb=0, p_noise=0, p_babble=0, p_eq=0, p_bandlimit=0,
                        p_telephone=0, p_clip=0, gain_db=(0.0, 0.0))
    assert torch.allclose(Augmenter(off)(x, 0), x)
    assert dataclasses.asdict(off)["p_codec"] == 0.0
