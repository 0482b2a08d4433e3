"""The tokenizer's test-time input options: vocal-tract length normalisation (the warped
filterbank, a phone encoder's ``warp``, fixed or chosen per input by the least posterior
entropy) and the band limit; the tokenizer and CLI options, and ``eval tokenizer`` over them."""

import json
import math

import numpy as np
import pytest
import torch
import torchaudio

from speechlm.audio import FRAME_SIZE, HOP_SIZE, SAMPLE_RATE
from speechlm.errors import ModelError
from speechlm.ssl.logmel import F_MAX, F_MIN, LogMelFrontEnd, warp_frequencies, warped_fbank
from speechlm.ssl.phone import WARPS, parse_warp

# the phone bundle: --warp and the speed ensemble are options of a phone encoder (the default
# whisper-phone has none)
PHONE_VOC = ("--vocoder", "phone-vocoder")
PHONE_MODEL = ("--tokenizer", "phone-k100", "--lm", "phone-lm", "--vocoder", "phone-vocoder")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_unwarped_filterbank_is_torchaudios_and_warped_ones_keep_every_band():
    plain = torchaudio.functional.melscale_fbanks(201, F_MIN, F_MAX, 80, SAMPLE_RATE,
                                                  norm="slaney", mel_scale="slaney")
    assert torch.allclose(warped_fbank(201, 80, 1.0), plain, atol=1e-6)
    f = torch.linspace(0, 8000, 801, dtype=torch.float64)
    for a in (0.8, 0.9, 1.1, 1.2):
        w = warp_frequencies(f, a, 8000.0)
        assert w[0] == 0 and abs(float(w[-1]) - 8000) < 1e-6 and (w.diff() > 0).all()
        assert torch.allclose(w[:300], a * f[:300])  # linear below the cut-off
        assert (warped_fbank(201, 80, a).sum(0) > 0).all()  # no band left without input


def test_a_warp_below_one_shows_a_tone_where_the_plain_bank_shows_a_lower_one():
    fe = LogMelFrontEnd(80)
    t = torch.arange(SAMPLE_RATE) / SAMPLE_RATE

    def band(freq: float, warp: float = 1.0) -> int:
        feats, _ = fe(torch.sin(2 * math.pi * freq * t)[None], warp=warp)
        return int(feats[0].mean(0).argmax())

    assert band(2000, 0.9) == band(1800)
    assert band(1000, 1.1) == band(1100)
    assert band(2000, 1.0) == band(2000)


def test_parse_warp():
    assert parse_warp(None) is None and parse_warp("none") is None and parse_warp("1") is None
    assert parse_warp("auto") == "auto" and parse_warp("0.9") == 0.9 and parse_warp(1.2) == 1.2
    for bad in ("fast", "0.5", "2", "nan"):
        with pytest.raises(ModelError, match="warp"):
            parse_warp(bad)


@pytest.fixture(scope="module")
def phone_tok():
    from speechlm.tokenizer import Tokenizer

    return Tokenizer.load("phone-k100")


def _clip(seconds: float, seed: int = 0) -> torch.Tensor:
    """A vowel-like buzz with moving formants (deterministic)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    src = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / SAMPLE_RATE))
    out = np.zeros(n)
    for fc in (500 + 200 * np.sin(2 * np.pi * 1.3 * t[::1]), 1500 + 400 * np.sin(t * 3)):
        out += np.sin(2 * np.pi * np.cumsum(fc) / SAMPLE_RATE) * src
    out += 0.05 * rng.standard_normal(n)
    return torch.from_numpy(0.3 * out / np.abs(out).max()).float()


def test_auto_warp_takes_the_least_uncertain_warp_and_is_that_warp(phone_tok):
    auto = phone_tok.with_warp("auto")
    assert phone_tok.warp is None and auto.warp == "auto"
    assert auto.unit_space == phone_tok.unit_space  # the same units, a normalised input
    wav = _clip(2.5)[None]
    feats = auto.features(wav)
    chosen = auto.encoder.last_warp
    assert chosen in WARPS
    entropies = []
    for a in WARPS:
        p = phone_tok.with_warp(a).features(wav)[0].clamp_min(1e-12)
        entropies.append(float(-(p * p.log()).sum(-1).mean()))
    assert WARPS[int(np.argmin(entropies))] == chosen
    assert torch.allclose(feats, phone_tok.with_warp(chosen).features(wav), atol=1e-5)
    # warp 1 is the plain encoder
    assert torch.equal(phone_tok.with_warp(1.0).features(wav), phone_tok.features(wav))
    assert not torch.allclose(phone_tok.with_warp(0.8).features(wav), phone_tok.features(wav))


def test_auto_warp_per_item_in_a_padded_batch_and_on_long_inputs(phone_tok):
    auto = phone_tok.with_warp("auto")
    a, b = _clip(1.5, 1), _clip(2.5, 2)
    batch = torch.zeros(2, b.numel())
    batch[0, : a.numel()], batch[1] = a, b
    lengths = torch.tensor([a.numel(), b.numel()])
    out = auto.encoder(batch, lengths)
    one = auto.encoder(a[None])
    assert out.shape[1] == (b.numel() - FRAME_SIZE) // HOP_SIZE + 1
    assert torch.allclose(out[0, : one.shape[1]], one[0], atol=1e-5)
    assert (out[0, one.shape[1]:] == 0).all()
    logits, frames = auto.encoder.logits(batch, lengths)
    assert logits.shape[:2] == out.shape[:2] and frames.tolist() == [one.shape[1], out.shape[1]]
    long = _clip(20.0, 3)[None]  # windowed: the warp is chosen on the first window
    assert auto.features(long).shape == phone_tok.features(long).shape
    assert auto.encoder.last_warp in WARPS
    units = auto(long[0])
    assert len(units.ids) > 0 and int(units.ids.max()) < auto.n_units


def test_warp_needs_a_log_mel_phone_encoder():
    from speechlm.tokenizer import Tokenizer

    mfcc = Tokenizer.load("mfcc-k100")
    assert mfcc.with_warp(None) is mfcc and mfcc.with_warp("none") is mfcc
    with pytest.raises(ModelError, match="phone-encoder"):
        mfcc.with_warp("auto")


def test_tokenize_and_eval_tokenizer_take_warp(phone_tok, small_corpus, tmp_path, capsys):
    from speechlm.cli import main
    from speechlm.data.manifest import read_manifest
    from speechlm.eval.tokenizer import markdown_table

    f = read_manifest(small_corpus / "test.tsv")[0].path
    assert main(["tokenize", "--tokenizer", "phone-k100", "--warp", "auto", str(f)]) == 0
    auto_line = capsys.readouterr().out.strip()
    assert main(["tokenize", "--tokenizer", "phone-k100", str(f)]) == 0
    plain_line = capsys.readouterr().out.strip()
    assert auto_line and plain_line and len(auto_line.split()) == len(plain_line.split())
    code = main(["eval", "tokenizer", "--tokenizer", "phone-k100", "--warp", "none", "--warp",
                 "auto", "--corpus", str(small_corpus), "--manifest", "test",
                 "--max-utterances", "4", "--no-ued", "--quiet", "--format", "json"])
    reps = json.loads(capsys.readouterr().out)["reports"]
    assert code == 0 and [r["tokenizer"] for r in reps] == ["phone-k100 (warp none)",
                                                            "phone-k100 (warp auto)"]
    assert "warp" not in reps[0] and reps[1]["warp"] == "auto"
    chosen = reps[1]["warps_chosen_by_voice"]
    assert chosen and all(sum(v["counts"].values()) >= 1 for v in chosen.values())
    assert reps[1]["frame_phone_error_vs_first"]["voices"]["all"]["utterances"] >= 1
    assert "Warps chosen" in markdown_table(reps) and "Warps chosen" not in markdown_table(reps[:1])


def test_resynth_and_continue_take_warp(small_corpus, tmp_path, capsys):
    from speechlm.cli import main
    from speechlm.data.manifest import read_manifest

    f = read_manifest(small_corpus / "test.tsv")[0].path
    out = tmp_path / "r.wav"
    assert main(["resynth", *PHONE_VOC, "--warp", "auto", str(f), "-o", str(out)]) == 0
    assert out.exists()
    cont = tmp_path / "c.wav"
    assert main(["continue", *PHONE_MODEL, "--warp", "0.9", "--band-limit", "6000", str(f), "-o",
                 str(cont), "--seconds", "1", "--seed", "1"]) == 0 and cont.exists()
    assert main(["resynth", *PHONE_VOC, "--band-limit", "6000", str(f), "-o",
                 str(tmp_path / "b.wav")]) == 0


def test_band_limit_removes_what_lies_above_it_and_keeps_the_unit_space(phone_tok):
    clip = _clip(2.0, 4)
    t = torch.arange(clip.numel()) / SAMPLE_RATE
    whistle = clip + 0.3 * torch.sin(2 * math.pi * 7300 * t)
    full = phone_tok.with_band_limit(None)  # the bundled one carries 6400 Hz since the switch
    lim = full.with_band_limit(6400)
    assert lim.band_limit == 6400 and lim.unit_space == full.unit_space == phone_tok.unit_space
    assert full.band_limit is None
    near = (lim.features(whistle[None]) - lim.features(clip[None])).abs().max()
    far = (full.features(whistle[None]) - full.features(clip[None])).abs().max()
    assert near < 0.05 < far
    # it survives the other with_* settings, and None gives the full band back
    assert lim.with_smoothing(0).band_limit == lim.with_warp("auto").band_limit == 6400
    assert torch.equal(lim.with_band_limit(None).features(clip[None]),
                       full.features(clip[None]))
    for bad in (500, 8000, 12000):
        with pytest.raises(ModelError, match="band limit"):
            full.with_band_limit(bad)


def eval_tokenizer_rows(corpus, capsys, *options: str) -> list[dict]:
    """``eval tokenizer`` of the bundled default on 4 test utterances with ``options`` (each
    repeated input option gives a row paired with the first): its reports, each checked to
    carry the pairing."""
    from speechlm.cli import main

    code = main(["eval", "tokenizer", "--tokenizer", "phone-k100", *options, "--corpus",
                 str(corpus), "--manifest", "test", "--max-utterances", "4", "--no-ued",
                 "--quiet", "--format", "json"])
    reps = json.loads(capsys.readouterr().out)["reports"]
    assert code == 0 and len(reps) >= 2
    assert all(r["frame_phone_error_vs_first"]["voices"]["all"]["utterances"] >= 1
               for r in reps[1:])
    return reps


def test_eval_tokenizer_rows_per_band_limit(small_corpus, capsys):
    reps = eval_tokenizer_rows(small_corpus, capsys, "--band-limit", "none", "--band-limit",
                               "6000")
    assert [r["tokenizer"] for r in reps] == [
        "phone-k100 (full band)", "phone-k100 (band limit 6000 Hz)"]
    assert "band_limit" not in reps[0] and reps[1]["band_limit"] == 6000


def test_eval_tokenizer_rows_per_precision(small_corpus, capsys):
    """--precision repeated: a row per precision, each named, int8 paired with fp32 (the
    phone bundle's encoder: a network whose linear layers int8 rounds)."""
    reps = eval_tokenizer_rows(small_corpus, capsys, "--precision", "fp32", "--precision",
                               "int8")
    assert [r["tokenizer"] for r in reps] == ["phone-k100 (fp32)", "phone-k100 (int8)"]
    assert reps[0]["precision"] == "fp32" and reps[1]["precision"] == "int8"
    assert reps[1]["frame_phone_error_vs_first"]["base"] == "phone-k100 (fp32)"


@pytest.mark.parametrize("flag,value,name,key,fitted,attr,off", [
    ("--band-limit", "6000", "-k8-b6000-", "band_limit", 6000, 6000,
     lambda t: t.with_band_limit(None)),
    ("--speeds", "1.1,0.9", "-k8-e0.9_1.1-", "speeds", [0.9, 1.1], (0.9, 1.1),
     lambda t: t.with_speeds(None))])
def test_a_tokenizer_fitted_with_an_input_option_applies_it_and_names_it(
        small_corpus, tmp_path, capsys, flag, value, name, key, fitted, attr, off):
    """``train tokenizer --band-limit`` / ``--speeds``: the k-means fitted on that input, which
    the tokenizer then applies by default and names; off at test time keeps the name."""
    from speechlm.cli import main
    from speechlm.data.manifest import read_manifest
    from speechlm.tokenizer import Tokenizer

    enc = "speechlm/pretrained/phone-k100/encoder"
    out = tmp_path / "tok"
    assert main(["-q", "train", "tokenizer", "--corpus", str(small_corpus), "--features", enc,
                 "--k", "8", "--max-utterances", "4", flag, value, "--out", str(out)]) == 0
    capsys.readouterr()
    tok = Tokenizer.load(out)
    assert getattr(tok, key) == attr and tok.training[key] == fitted and name in tok.unit_space
    plain = off(tok)
    assert getattr(plain, key) is None and plain.unit_space == tok.unit_space  # test-time
    wav = _clip(1.5, 5)[None]
    assert not torch.allclose(plain.features(wav), tok.features(wav))
    assert torch.equal(tok.with_smoothing(0).features(wav), tok.features(wav))
    f = read_manifest(small_corpus / "test.tsv")[0].path
    for flags in ([], [flag, "none"]):  # absent: the tokenizer's own; none: off
        assert main(["tokenize", "--tokenizer", str(out), *flags, str(f)]) == 0
    own, none = capsys.readouterr().out.strip().splitlines()
    assert own.split() == [str(int(i)) for i in tok(str(f)).ids]
    assert none.split() == [str(int(i)) for i in plain(str(f)).ids]
    assert main(["train", "tokenizer", "--features", enc, "--layer", "ctc", flag, value,
                 "--out", str(tmp_path / "ctc")]) == 2
    assert "for k-means units" in capsys.readouterr().err


def test_eval_resynth_refuses_a_tokenizer_of_another_unit_space(capsys):
    from speechlm.cli import main

    code = main(["eval", "resynth", "--tokenizer", "mfcc-k100", "--vocoder", "phone-vocoder",
                 "--data", "heldout", "--per-voice", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "unit space" in err and len(err.strip().splitlines()) == 1


def test_the_default_band_limited_units_compose_and_resave_to_the_same_bytes(tmp_path):
    """``phone-k100`` (since the band-limited switch) applies its 6400 Hz cut-off by default,
    the bundled phone-lm and phone-vocoder speak its units, another tokenizer's units are
    refused beside them, and ``save(half=True)`` (what the switch bundles with) writes the very
    weights bundled, so a rebuilt bundle with equal centroids adds nothing to git history."""
    from speechlm.checkpoint import resolve
    from speechlm.pipeline import SpeechLM
    from speechlm.tokenizer import Tokenizer

    tok = Tokenizer.load("phone-k100")
    assert tok.band_limit == 6400 and "-k100-b6400-" in tok.unit_space
    bundled = resolve("phone-k100")
    out = tok.save(tmp_path / "phone-k100", half=True)
    weights = sorted(p.relative_to(bundled) for p in bundled.rglob("*.safetensors"))
    assert len(weights) >= 2  # the centroids and the encoder
    for rel in weights:
        assert (out / rel).read_bytes() == (bundled / rel).read_bytes(), rel
    assert Tokenizer.load(out).unit_space == tok.unit_space
    m = SpeechLM.load(tokenizer="phone-k100", lm="phone-lm", vocoder="phone-vocoder")
    assert m.lm.unit_space == m.vocoder.unit_space == tok.unit_space
    with pytest.raises(ModelError, match="unit space"):
        SpeechLM.load(tokenizer="mfcc-k100", lm="phone-lm", vocoder="phone-vocoder")
