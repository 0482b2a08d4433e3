"""The drawn-F0 path's intonation model (speechlm.prosody): network properties, training
(loss falls, resume, purity of batches), and the vocoder drawing its pitch shape from it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechlm.errors import DataError, ModelError
from speechlm.prosody import ContourConfig, ContourModel, ContourNet, place_features
from speechlm.vocoder import Vocoder, f0_conditioning

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = "configs/vocoder/contour-tiny.toml"


@pytest.fixture(scope="module")
def f0_vocoder_run(small_corpus, tmp_path_factory):
    """(a tiny vocoder that draws its F0, trained 4 steps; its analysed corpus)."""
    from speechlm.train.vocoder import load_config, train_vocoder

    tmp = tmp_path_factory.mktemp("cvoc")
    cfg = load_config("configs/vocoder/tiny.toml", [
        f"--data.corpus={small_corpus}", f"--data.cache={tmp / 'cache'}",
        f"--train.out={tmp / 'run'}", "--model.f0_bins=16", "--train.max_steps=4",
        "--train.eval_interval=2", "--train.ckpt_interval=2"])
    return train_vocoder(cfg, progress=False) / "model", tmp / "cache"


@pytest.fixture(scope="module")
def contour_run(f0_vocoder_run, tmp_path_factory):
    from speechlm.train.vocoder import load_config, train_vocoder

    _, cache = f0_vocoder_run
    out = tmp_path_factory.mktemp("contour") / "run"
    over = [f"--data.cache={cache}", f"--train.out={out}"]
    return train_vocoder(load_config(TINY, over), progress=False), over


def _net(**kw) -> ContourNet:
    torch.manual_seed(0)
    return ContourNet(ContourConfig(n_units=10, unit_space="test-k10", embed=8, hidden=12,
                                    layers=2, bins=16, dropout=0.0, **kw)).eval()


def test_place_features_mark_each_frames_place_and_stop_at_the_end():
    p = place_features(torch.tensor([4, 2]), 4)
    assert p.shape == (2, 4, 3)
    assert torch.allclose(p[0, :, 0], torch.tensor([0, 0.25, 0.5, 0.75]))
    assert torch.allclose(p[0, :, 1], torch.tensor([0.75, 0.5, 0.25, 0]))
    assert torch.allclose(p[1, 2:], torch.zeros(2, 3))  # padding
    assert torch.allclose(p[1, 0, 2], torch.log(torch.tensor(2 / 50)))


def test_a_padded_batch_gives_each_utterance_what_it_gives_alone():
    """The GRU runs packed: padding changes nothing, in either direction."""
    net = _net()
    a, b = torch.randint(0, 10, (9,)), torch.randint(0, 10, (5,))
    batch = torch.zeros(2, 9, dtype=torch.long)
    batch[0], batch[1, :5] = a, b
    with torch.no_grad():
        both = net(batch, torch.tensor([9, 5]))
        alone_a = net(a[None], torch.tensor([9]))[0]
        alone_b = net(b[None], torch.tensor([5]))[0]
    assert both.shape == (2, 18, 16)
    assert torch.allclose(both[0], alone_a, atol=1e-5)
    assert torch.allclose(both[1, :10], alone_b, atol=1e-5)
    # the whole utterance is in view: a change at the end moves the first frame's distribution
    c = a.clone()
    c[-1] = (c[-1] + 1) % 10
    with torch.no_grad():
        moved = net(c[None], torch.tensor([9]))[0]
    assert not torch.allclose(moved[0], alone_a[0])


def test_z_scored_targets_are_the_vocoders_f0_input():
    from speechlm.train.contour import z_scored

    rng = np.random.default_rng(0)
    f0 = np.where(rng.random(200) < 0.7, rng.uniform(90, 220, 200), 0).astype(np.float32)
    z, voiced = z_scored(f0)
    want = f0_conditioning(f0, len(f0))
    assert np.array_equal(voiced, want[:, 1].numpy() > 0)
    assert np.allclose(z, want[:, 0].numpy(), atol=1e-4)
    z0, v0 = z_scored(np.array([0, 120, 0, 0], np.float32))  # one voiced frame: no shape
    assert not v0.any() and not z0.any()


def test_batches_are_a_pure_function_of_seed_and_step(f0_vocoder_run):
    from speechlm.train.contour import load_config, make_batch
    from speechlm.train.vocoder import CacheSplit

    data = CacheSplit(f0_vocoder_run[1], "train")
    t = load_config(TINY)["train"]
    b1, b2 = make_batch(data, 3, 7, t, 16), make_batch(data, 3, 7, t, 16)
    assert all(torch.equal(b1[k], b2[k]) for k in b1)
    assert not torch.equal(make_batch(data, 3, 8, t, 16)["units"], b1["units"])
    B, T = b1["units"].shape
    assert B == t["batch_size"] and T <= t["max_frames"]
    assert b1["z"].shape == b1["mask"].shape == b1["target"].shape == (B, 2 * T)
    assert int(b1["target"].min()) >= 0 and int(b1["target"].max()) < 16
    # every row is voiced somewhere, and nothing past an utterance's end is
    for i, n in enumerate(b1["lengths"].tolist()):
        assert b1["mask"][i].sum() >= 2 and not b1["mask"][i, 2 * n:].any()


def test_training_learns_resumes_and_exports(contour_run, f0_vocoder_run):
    from speechlm.train.vocoder import load_config, train_vocoder

    run, over = contour_run
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    train = [r["total"] for r in recs if "total" in r and "valid_total" not in r]
    assert len(train) >= 4 and train[-1] < train[0]
    stage = ContourModel.load(run / "model")
    meta = json.loads((f0_vocoder_run[1] / "train.json").read_text())
    assert stage.unit_space == meta["unit_space"] and stage.model.cfg.bins == 16
    assert stage.training["steps"] >= 10
    before = (run / "state.safetensors").read_bytes()
    train_vocoder(load_config(TINY, over), progress=False)  # resumes at the end: nothing to do
    assert (run / "state.safetensors").read_bytes() == before


def test_recipe_checks(tmp_path):
    from speechlm.train.vocoder import load_config, train_vocoder

    assert load_config(TINY)["model"]["kind"] == "contour"
    with pytest.raises(DataError, match="max_frames"):
        load_config(TINY, ["--train.max_frames=3"])
    with pytest.raises(DataError, match="unknown config keys: model.channels"):
        load_config(TINY, ["--model.channels=3"])
    with pytest.raises(DataError, match="no analysed corpus"):
        train_vocoder(load_config(TINY, [f"--data.cache={tmp_path}",
                                         f"--train.out={tmp_path / 'r'}"]), progress=False)


def test_the_stage_round_trips_and_checks_its_input(tmp_path):
    m = ContourModel(_net(), {"steps": 3})
    ids = torch.randint(0, 10, (7,))
    m.save(tmp_path / "c")
    back = ContourModel.load(tmp_path / "c")
    assert torch.equal(back.logits(ids), m.logits(ids)) and back.training == {"steps": 3}
    m.save(tmp_path / "h", half=True)
    assert torch.allclose(ContourModel.load(tmp_path / "h").logits(ids), m.logits(ids), atol=2e-2)
    assert m.logits(ids).shape == (14, 16)
    for bad in (torch.tensor([0, 10]), torch.tensor([-1]), torch.zeros(0, dtype=torch.long)):
        with pytest.raises(ModelError):
            m.logits(bad)
    (tmp_path / "c" / "config.json").write_text(json.dumps({
        **json.loads((tmp_path / "c" / "config.json").read_text()), "model": {"n_units": 3}}))
    with pytest.raises(ModelError, match="bad contour config"):
        ContourModel.load(tmp_path / "c")


def test_the_vocoder_draws_its_pitch_shape_from_the_contour_model(
        f0_vocoder_run, contour_run, tmp_path, wav_file):
    from speechlm.audio import f0_track, load_audio
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import sample_f0_contour

    voc = Vocoder.load(f0_vocoder_run[0])
    wav = load_audio(wav_file(1.5))
    units, voice = Tokenizer.load("mfcc-k100").tokenize_wave(wav), voc.voice(wav)
    plain_hz, plain_on = voc.draw_f0(units, voice, seed=1)
    plain = voc.parameters_for(units, voice, seed=1)
    f0 = f0_track(wav.numpy())
    src = voc.parameters_for(units, voice, f0=f0)
    voc.use_contour(contour_run[0] / "model")
    hz, on = voc.draw_f0(units, voice, seed=1)
    # the pitch is the contour model's draw at the voice's level and spread; voicing unchanged
    logits = voc.contour.logits(units.ids)
    z = sample_f0_contour(logits, torch.Generator().manual_seed(1), spread=voc.f0_spread)
    want = torch.exp(z * voice.lf0_mean_std[1] + voice.lf0_mean_std[0])
    assert np.allclose(hz, want.numpy(), rtol=1e-5) and np.array_equal(on, plain_on)
    assert not np.allclose(hz, plain_hz)
    # the decoder speaks that contour as it speaks a source's; the source-F0 path is unchanged
    drawn = voc.parameters_for(units, voice, seed=1)
    same = voc.parameters_for(units, voice, f0=np.where(on, hz, 0.0))
    assert torch.equal(drawn["mel"], same["mel"]) and not torch.equal(drawn["mel"], plain["mel"])
    assert torch.equal(voc.parameters_for(units, voice, f0=f0)["mel"], src["mel"])
    # saved inside the vocoder's directory, loaded with it; None goes back
    voc.save(tmp_path / "v")
    assert (tmp_path / "v" / "contour" / "config.json").exists()
    assert np.allclose(Vocoder.load(tmp_path / "v").draw_f0(units, voice, seed=1)[0], hz)
    assert np.allclose(voc.use_contour(None).draw_f0(units, voice, seed=1)[0], plain_hz)


def test_a_contour_model_of_other_units_is_refused(f0_vocoder_run, tmp_path):
    voc = Vocoder.load(f0_vocoder_run[0])
    ContourModel(_net()).save(tmp_path / "other")
    with pytest.raises(ModelError, match="the contour model reads units 'test-k10'"):
        voc.use_contour(tmp_path / "other")
    with pytest.raises(ModelError, match="holds a 'vocoder' model"):
        voc.use_contour(f0_vocoder_run[0])
