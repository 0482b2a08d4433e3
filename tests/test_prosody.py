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


# ----------------------------------------------------------- a known F0 prefix (the prompt's)


def test_known_features_mark_the_prefix_and_nothing_after_it():
    from speechlm.prosody import KNOWN_FEATURES, known_features

    z = torch.tensor([[1.0, -1.0, 0.5, 0.0, 2.0, 2.0]])
    voiced = torch.tensor([[1.0, 1.0, 1.0, 0.0, 1.0, 1.0]])
    k = known_features(z, voiced, torch.tensor([2]), 3)
    assert k.shape == (1, 3, KNOWN_FEATURES)
    assert torch.equal(k[0, 0], torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0]))
    assert torch.equal(k[0, 1], torch.tensor([0.5, 0.0, 1.0, 0.0, 1.0]))  # an unvoiced frame
    assert torch.equal(k[0, 2], torch.zeros(KNOWN_FEATURES))  # past the prefix: unknown


def test_z_scored_over_a_prefix_uses_the_prefix_statistics():
    from speechlm.prosody import z_scored

    f0 = np.array([100, 0, 200, 400, 800], np.float32)
    z, voiced = z_scored(f0, stats_frames=3)
    lf = np.log([100.0, 200.0])
    assert np.allclose(z[[0, 2]], (lf - lf.mean()) / lf.std(ddof=1), atol=1e-5)
    assert z[3] > z[2] and voiced[4] and not voiced[1]  # later frames on the prefix's scale
    assert not z_scored(f0, stats_frames=1)[1].any()  # one voiced frame: no scale


def test_a_prefix_model_reads_the_known_f0_by_its_shape_and_others_ignore_it():
    from speechlm.prosody import MIN_PREFIX_VOICED

    ids = torch.randint(0, 10, (40,), generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(0)
    f0 = np.where(rng.random(40) < 0.8, rng.uniform(90, 220, 40), 0).astype(np.float32)
    reads = ContourModel(_net(known_prefix=True))
    assert reads.reads_prefix and not ContourModel(_net()).reads_prefix
    plain = reads.logits(ids)
    known = reads.logits(ids, f0)
    assert known.shape == plain.shape == (80, 16) and not torch.allclose(known, plain)
    # the shape is read, not the level: the same prefix an octave up gives the same logits
    assert torch.allclose(reads.logits(ids, 2 * f0), known, atol=1e-5)
    # too little voicing to have a shape: as if nothing were known
    few = np.zeros(40, np.float32)
    few[: MIN_PREFIX_VOICED - 1] = 120.0
    assert torch.equal(reads.logits(ids, few), plain)
    other = ContourModel(_net())
    assert torch.equal(other.logits(ids, f0), other.logits(ids))


def test_prefix_batches_know_their_first_frames_and_score_only_the_rest(f0_vocoder_run):
    from speechlm.prosody import MIN_PREFIX_VOICED
    from speechlm.train.contour import load_config, make_batch
    from speechlm.train.vocoder import CacheSplit

    data = CacheSplit(f0_vocoder_run[1], "train")
    t = {**load_config(TINY)["train"], "min_prefix": 5}
    plain = make_batch(data, 3, 7, t, 16)
    assert "known" not in plain
    # no prefix row: the same batch as before, and nothing known
    none = make_batch(data, 3, 7, {**t, "prefix_share": 0.0}, 16, known_prefix=True)
    assert all(torch.equal(none[k], plain[k]) for k in plain) and not none["known"].any()
    b = make_batch(data, 3, 7, {**t, "prefix_share": 1.0}, 16, known_prefix=True)
    again = make_batch(data, 3, 7, {**t, "prefix_share": 1.0}, 16, known_prefix=True)
    assert all(torch.equal(b[k], again[k]) for k in b)
    ks = b["known"][..., -1].sum(1).long()  # known unit frames per row
    assert (ks > 0).any()
    for i, k in enumerate(ks.tolist()):
        n = int(b["lengths"][i])
        if not k:
            continue
        assert 5 <= k <= n - 5
        assert not b["mask"][i, : 2 * k].any() and b["mask"][i, 2 * k:].sum() > 0
        v = b["known"][i, :k, 2:4].reshape(-1) > 0
        assert int(v.sum()) >= MIN_PREFIX_VOICED
        # the prefix is z-scored over itself: its voiced frames have mean 0
        zk = b["z"][i, : 2 * k][v]
        assert abs(float(zk.mean())) < 1e-4
        assert torch.allclose(b["known"][i, :k, :2].reshape(-1)[v], zk)


def test_a_prefix_model_trains_from_the_recipe(f0_vocoder_run, tmp_path):
    from speechlm.train.vocoder import load_config, train_vocoder

    over = [f"--data.cache={f0_vocoder_run[1]}", f"--train.out={tmp_path / 'run'}",
            "--model.known_prefix=true", "--train.min_prefix=5", "--train.max_steps=10"]
    run = train_vocoder(load_config(TINY, over), progress=False)
    assert ContourModel.load(run / "model").reads_prefix
    # scripts/contour_prefix_gain.py: the prefix given and hidden, and a units-only model beside
    import importlib.util

    from speechlm.errors import SpeechLMError

    spec = importlib.util.spec_from_file_location("gain", "scripts/contour_prefix_gain.py")
    gain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gain)
    plain_run = train_vocoder(load_config(TINY, [
        f"--data.cache={f0_vocoder_run[1]}", f"--train.out={tmp_path / 'plain'}",
        "--train.max_steps=2"]), progress=False)
    out = gain.prefix_gain(str(run / "model"), str(f0_vocoder_run[1]), batches=2,
                           base=str(plain_run / "model"))
    assert set(out["given"]) == set(out["hidden"]) == {"ce", "corr"}
    assert out["gain_ce"] == pytest.approx(out["hidden"]["ce"] - out["given"]["ce"], abs=1e-3)
    assert out["no_prefix"]["base"]["ce"] != out["no_prefix"]["model"]["ce"]
    with pytest.raises(SpeechLMError, match="reads no known prefix"):
        gain.prefix_gain(str(plain_run / "model"), str(f0_vocoder_run[1]), batches=1)
    for bad, match in (("--train.prefix_share=1.5", "prefix_share"),
                       ("--train.min_prefix=0", "min_prefix")):
        with pytest.raises(DataError, match=match):
            load_config(TINY, [*over, bad])


def test_the_vocoder_speaks_the_known_prefix_with_its_f0_and_draws_the_rest(
        f0_vocoder_run, wav_file):
    from speechlm.audio import f0_track, load_audio
    from speechlm.prosody import z_scored
    from speechlm.tokenizer import Tokenizer

    voc = Vocoder.load(f0_vocoder_run[0])
    wav = load_audio(wav_file(1.5))
    units, voice = Tokenizer.load("mfcc-k100").tokenize_wave(wav), voc.voice(wav)
    f0 = f0_track(wav.numpy())[: 2 * len(units)].astype(np.float32)
    plain_hz, plain_on = voc.draw_f0(units, voice, seed=1)
    k = 2 * (len(units) // 2)
    hz, on = voc.draw_f0(units, voice, seed=1, known_f0=f0[:k])
    zk, vk = z_scored(f0[:k])
    # the prefix: its own voicing, its own shape at the voice's level and spread
    assert np.array_equal(on[:k], vk)
    want = np.exp(zk * float(voice.lf0_mean_std[1]) + float(voice.lf0_mean_std[0]))
    assert np.allclose(hz[:k][vk], want[vk], rtol=1e-4)
    # after it, without a model that reads it: the same draw as before
    assert np.array_equal(hz[k:], plain_hz[k:]) and np.array_equal(on[k:], plain_on[k:])
    # the whole utterance known, in its own voice: its own F0
    full_hz, full_on = voc.draw_f0(units, voice, seed=1, known_f0=f0)
    # (the voice's statistics come from all of the recording, a few frames more: within 1 %)
    assert np.allclose(full_hz[f0 > 0], f0[f0 > 0], rtol=1e-2) and np.array_equal(full_on, f0 > 0)
    # decoding with it speaks that contour; with a source F0 it is ignored
    drawn = voc.parameters_for(units, voice, seed=1, known_f0=f0[:k])
    same = voc.parameters_for(units, voice, f0=np.where(on, hz, 0.0))
    assert torch.equal(drawn["mel"], same["mel"])
    src = voc.parameters_for(units, voice, f0=f0)
    assert torch.equal(voc.parameters_for(units, voice, f0=f0, known_f0=f0[:k])["mel"],
                       src["mel"])


def test_the_drawn_f0_weight_speaks_the_drawn_contour_itself(f0_vocoder_run, wav_file, tmp_path):
    from speechlm.audio import load_audio
    from speechlm.tokenizer import Tokenizer

    voc = Vocoder.load(f0_vocoder_run[0])
    wav = load_audio(wav_file(1.5))
    units, voice = Tokenizer.load("mfcc-k100").tokenize_wave(wav), voc.voice(wav)
    hz, on = voc.draw_f0(units, voice, seed=1)
    est = voc.parameters_for(units, voice, seed=1)
    assert voc.drawn_f0_weight == 0.0  # as trained: the decoder's estimate
    voc.set_drawn_f0_weight(1.0)
    spoken = voc.parameters_for(units, voice, seed=1)
    on_t = torch.from_numpy(on)
    assert torch.allclose(torch.exp(spoken["lf0"][on_t]), torch.from_numpy(hz)[on_t], rtol=1e-4)
    assert torch.equal(spoken["lf0"][~on_t], est["lf0"][~on_t])
    assert torch.equal(spoken["mel"], est["mel"])  # only the F0 spoken changes
    voc.set_drawn_f0_weight(0.5)
    half = voc.parameters_for(units, voice, seed=1)["lf0"][on_t]
    assert torch.allclose(half, (est["lf0"][on_t] + spoken["lf0"][on_t]) / 2, atol=1e-5)
    # a source F0 is left to source_f0_weight; the setting is saved and checked
    f0 = np.where(on, hz, 0.0)
    assert torch.equal(voc.parameters_for(units, voice, f0=f0)["lf0"],
                       voc.set_drawn_f0_weight(0.0).parameters_for(units, voice, f0=f0)["lf0"])
    voc.set_drawn_f0_weight(1.0).save(tmp_path / "v")
    assert Vocoder.load(tmp_path / "v").drawn_f0_weight == 1.0
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="drawn_f0_weight"):
            voc.set_drawn_f0_weight(bad)
