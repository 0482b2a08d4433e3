"""The tokenizer's speed ensemble (``--speeds``): a phone encoder's frame log-posteriors
averaged over the input read at several speeds, each pass read back at the input's own frames;
the parser, the frame mapping, the ensemble's arithmetic, padded batches, refusals and the CLI
options."""

import numpy as np
import pytest
import torch
from test_tokenizer_input import _clip, eval_tokenizer_rows  # a buzz; eval tokenizer rows

from speechlm.audio import FRAME_SIZE, HOP_SIZE, SAMPLE_RATE, resample
from speechlm.errors import ModelError
from speechlm.ssl.phone import PhoneEncoder, at_original_frames, parse_speeds

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_speeds():
    assert parse_speeds(None) is None and parse_speeds("none") is None
    assert parse_speeds("1") is None and parse_speeds([1.0, 1]) is None  # only 1: off
    assert parse_speeds("1.15,0.85,1") == (0.85, 1.0, 1.15)
    assert parse_speeds("0.9,0.9, 1.1") == (0.9, 1.1) and parse_speeds((1.2,)) == (1.2,)
    for bad in ("fast", "0.5", "2", "", ",", "nan", "0.9,1.5", "inf"):
        with pytest.raises(ModelError, match="speeds"):
            parse_speeds(bad)


def _centres(frames: int) -> np.ndarray:
    return np.arange(frames) * HOP_SIZE + FRAME_SIZE / 2


@pytest.mark.parametrize("speed", [0.8, 1.0, 1.25])
def test_rows_of_a_faster_input_are_read_at_the_original_frames_times(speed):
    frames = 120
    fast = int((frames - 1) * HOP_SIZE / speed) // HOP_SIZE + 1  # frames of the faster input
    # each row of the faster input holds the original time (in samples) at its centre
    x = torch.from_numpy(_centres(fast) * speed).double()[:, None]
    got = at_original_frames(x, frames, speed)[:, 0].numpy()
    want = _centres(frames)
    pos = (want / speed - FRAME_SIZE / 2) / HOP_SIZE  # fractional row of each original frame
    inside = (pos >= 0) & (pos <= fast - 1)
    assert got.shape == (frames,) and inside.sum() > frames * 0.7
    # linear interpolation between the centres is exact for a linear function of time
    np.testing.assert_allclose(got[inside], want[inside], rtol=0, atol=1e-6)
    assert np.all(got[pos > fast - 1] == x[-1, 0].item())  # past the ends: the end rows held
    assert np.all(got[pos < 0] == x[0, 0].item())
    if speed == 1.0:
        assert torch.equal(at_original_frames(x, frames, 1.0), x[:frames])
    assert at_original_frames(x[:0], 5, speed).shape == (5, 1)


@pytest.fixture(scope="module")
def phone_tok():
    from speechlm.tokenizer import Tokenizer

    return Tokenizer.load("phone-k100").with_band_limit(None)


def _one_speed_logprobs(enc: PhoneEncoder, wav: torch.Tensor, speed: float) -> torch.Tensor:
    """The plain encoder's log-posteriors of ``wav`` read ``speed`` times faster, at ``wav``'s
    frames: what each pass of the ensemble contributes."""
    frames = (wav.numel() - FRAME_SIZE) // HOP_SIZE + 1
    x = wav[None] if speed == 1.0 else resample(wav[None], round(SAMPLE_RATE * speed),
                                                SAMPLE_RATE)
    lp = enc(x)[0].clamp_min(1e-30).log()
    return lp[:frames] if speed == 1.0 else at_original_frames(lp, frames, speed)


def test_the_ensemble_is_the_normalised_mean_of_each_speeds_log_posteriors(phone_tok):
    wav = _clip(2.0)
    ens = phone_tok.with_speeds("0.9,1.1")
    assert ens.speeds == (0.9, 1.1) and phone_tok.speeds is None
    assert ens.unit_space == phone_tok.unit_space  # the same units, read from more passes
    got = ens.features(wav[None])[0]
    mean = (_one_speed_logprobs(phone_tok.encoder, wav, 0.9)
            + _one_speed_logprobs(phone_tok.encoder, wav, 1.1)) / 2
    assert got.shape == phone_tok.features(wav[None])[0].shape
    assert torch.allclose(got, mean.softmax(-1), atol=1e-4)
    assert torch.allclose(got.sum(-1), torch.ones(got.shape[0]), atol=1e-5)
    # speed 1 alone is the plain encoder; none switches the ensemble off again
    assert ens.with_speeds("1").speeds is None
    assert torch.equal(ens.with_speeds("none").features(wav[None]), phone_tok.features(wav[None]))
    units = ens(wav)
    assert len(units.ids) > 0 and int(units.ids.max()) < ens.n_units
    # the log-posteriors output gives the log of the same ensemble
    logp = PhoneEncoder(phone_tok.encoder.path, output="logprobs").with_speeds((0.9, 1.1))
    assert torch.allclose(logp(wav[None])[0].exp(), got, atol=1e-4)


def test_the_ensemble_per_item_in_a_padded_batch_and_on_long_inputs(phone_tok):
    ens = phone_tok.with_speeds("0.85,1,1.15").encoder
    a, b = _clip(1.5, 1), _clip(2.5, 2)
    batch = torch.zeros(2, b.numel())
    batch[0, : a.numel()], batch[1] = a, b
    lengths = torch.tensor([a.numel(), b.numel()])
    out = ens(batch, lengths)
    one = ens(a[None])
    assert out.shape[1] == (b.numel() - FRAME_SIZE) // HOP_SIZE + 1
    assert torch.allclose(out[0, : one.shape[1]], one[0], atol=1e-5)
    assert (out[0, one.shape[1]:] == 0).all()
    logits, frames = ens.logits(batch, lengths)
    assert frames.tolist() == [one.shape[1], out.shape[1]]
    assert torch.allclose(logits[0, : one.shape[1]].exp(), one[0], atol=1e-5)
    long = _clip(20.0, 3)[None]  # windowed at every speed
    assert ens(long).shape == phone_tok.encoder(long).shape
    tiny = torch.zeros(1, FRAME_SIZE)  # one frame: read faster it is shorter than a frame
    assert ens(tiny).shape == (1, 1, len(ens.phones))


def test_speeds_need_a_phone_encoders_posteriors_and_no_auto_warp(phone_tok):
    from speechlm.tokenizer import Tokenizer

    mfcc = Tokenizer.load("mfcc-k100")
    assert mfcc.with_speeds(None) is mfcc and mfcc.with_speeds("none") is mfcc
    with pytest.raises(ModelError, match="phone-encoder"):
        mfcc.with_speeds("0.9,1.1")
    path = phone_tok.encoder.path
    for output in ("ctc", 3):
        with pytest.raises(ModelError, match="speeds"):
            PhoneEncoder(path, output=output).with_speeds("0.9,1.1")
    with pytest.raises(ModelError, match="warp auto"):
        phone_tok.with_warp("auto").with_speeds("0.9,1.1")
    with pytest.raises(ModelError, match="warp auto"):
        phone_tok.with_speeds("0.9,1.1").with_warp("auto")
    both = phone_tok.with_speeds("0.9,1.1").with_warp(0.95)  # a fixed warp combines
    assert both.speeds == (0.9, 1.1) and both.warp == 0.95
    assert both.with_band_limit(6000).speeds == both.with_smoothing(1).speeds == (0.9, 1.1)
    assert both.with_precision("bf16").speeds == (0.9, 1.1)


def test_tokenize_eval_and_resynth_take_speeds(small_corpus, tmp_path, capsys):
    from speechlm.cli import main
    from speechlm.data.manifest import read_manifest

    f = read_manifest(small_corpus / "test.tsv")[0].path
    assert main(["tokenize", "--tokenizer", "phone-k100", "--speeds", "0.9,1,1.1", str(f)]) == 0
    ens = capsys.readouterr().out.split()
    assert main(["tokenize", "--tokenizer", "phone-k100", str(f)]) == 0
    plain = capsys.readouterr().out.split()
    assert ens and len(ens) == len(plain)  # one unit per frame either way
    reps = eval_tokenizer_rows(small_corpus, capsys, "--speeds", "none", "--speeds", "0.9,1,1.1")
    assert [r["tokenizer"] for r in reps] == [
        "phone-k100 (no speed ensemble)", "phone-k100 (speeds 0.9,1,1.1)"]
    assert "speeds" not in reps[0] and reps[1]["speeds"] == [0.9, 1.0, 1.1]
    out = tmp_path / "r.wav"
    assert main(["resynth", "--vocoder", "phone-vocoder", "--speeds", "0.9,1.1", str(f), "-o",
                 str(out)]) == 0 and out.exists()
    with pytest.raises(SystemExit) as e:
        main(["tokenize", "--speeds", "0.9,2", str(f)])
    assert e.value.code == 2 and "speeds" in capsys.readouterr().err


def test_train_tokenizer_refuses_speeds_without_a_phone_encoder(small_corpus, tmp_path,
                                                                capsys):
    """(Fitting on the ensemble: test_tokenizer_input's fitted-input-option test.)"""
    from speechlm.cli import main

    assert main(["train", "tokenizer", "--corpus", str(small_corpus), "--features", "mfcc",
                 "--speeds", "0.9,1.1", "--out", str(tmp_path / "mfcc")]) == 2
    err = capsys.readouterr().err
    assert "--speeds" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mfcc").exists()
