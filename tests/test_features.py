import pytest
import torch
from conftest import tone

from speechlm.features import LogMelEncoder, MFCCEncoder, build_encoder, num_frames


@pytest.mark.parametrize("n", [400, 719, 720, 16000, 16123])
def test_frame_count_matches_hubert_front_end(n):
    assert num_frames(n) == (n - 400) // 320 + 1
    for enc in (MFCCEncoder(), LogMelEncoder()):
        assert enc(torch.randn(1, n)).shape == (1, num_frames(n), enc.dim)


def test_shorter_than_a_frame_has_no_frames():
    assert num_frames(399) == 0


def test_dims():
    assert MFCCEncoder().dim == 39 and MFCCEncoder(deltas=False).dim == 13
    assert LogMelEncoder().dim == 80


@pytest.mark.parametrize("enc", [MFCCEncoder(), LogMelEncoder()], ids=["mfcc", "logmel"])
def test_batched_equals_single_items(enc):
    a = torch.from_numpy(tone(1.0, seed=1))
    b = torch.from_numpy(tone(0.63, freq=150, seed=2))
    batch = torch.zeros(2, a.numel())
    batch[0], batch[1, : b.numel()] = a, b
    lengths = torch.tensor([a.numel(), b.numel()])
    out = enc(batch, lengths)
    fa, fb = enc(a[None])[0], enc(b[None])[0]
    assert torch.allclose(out[0], fa, atol=1e-4)
    assert torch.allclose(out[1, : len(fb)], fb, atol=1e-4)


def test_deltas_of_a_constant_are_zero():
    enc = MFCCEncoder()
    x = torch.from_numpy(tone(0.2))
    x = x[:720].repeat(8)  # a periodic signal with period 720 samples
    f = enc(x[None])[0]
    static = f[:, :13]
    assert torch.allclose(static[2], static[11], atol=1e-3)  # frames 9 apart see the same signal


def test_digital_silence_is_finite():
    f = MFCCEncoder()(torch.zeros(1, 8000))
    assert torch.isfinite(f).all()


def test_config_round_trip():
    for enc in (MFCCEncoder(n_mfcc=20), LogMelEncoder(n_mels=64)):
        again = build_encoder(enc.config())
        x = torch.randn(1, 4000)
        assert torch.equal(again(x), enc(x))


def test_float64_input_matches_float32():
    x = torch.from_numpy(tone(0.5))
    enc = MFCCEncoder()
    assert torch.allclose(enc(x[None].double()).float(), enc(x[None]), atol=1e-3)


def test_deltas_by_hand():
    from speechlm.features import _deltas

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 17, 5, generator=g)
    d = _deltas(x, torch.tensor([17, 9]))
    # first frame: the replicated edge x[-1] = x[-2] = x[0]
    assert torch.allclose(d[:, 0], ((x[:, 1] - x[:, 0]) + 2 * (x[:, 2] - x[:, 0])) / 10,
                          atol=1e-6)
    t = 8  # middle frame of item 0
    assert torch.allclose(d[0, t], ((x[0, t + 1] - x[0, t - 1]) + 2 * (x[0, t + 2] - x[0, t - 2]))
                          / 10, atol=1e-6)
    # item 1 has 9 frames: its last frame replicates x[8]
    assert torch.allclose(d[1, 8], ((x[1, 8] - x[1, 7]) + 2 * (x[1, 8] - x[1, 6])) / 10, atol=1e-6)
