"""The unit vocoder: network properties, training (loss falls, resume), inference contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from speechlm.errors import DataError, ModelError
from speechlm.units import Units
from speechlm.vocoder import (
    HOP,
    UPSAMPLE,
    UnitVocoder,
    Vocoder,
    VocoderConfig,
    f0_conditioning,
    log_f0_stats,
)

TINY = "configs/vocoder/tiny.toml"


def _cfg(small_corpus, tmp, **train):
    from speechlm.train.vocoder import load_config

    ov = [f"--data.corpus={small_corpus}", f"--data.cache={tmp / 'cache'}",
          f"--train.out={tmp / 'run'}"] + [f"--train.{k}={v}" for k, v in train.items()]
    return load_config(TINY, ov)


@pytest.fixture(scope="module")
def tiny_run(tiny_vocoder_run):
    return tiny_vocoder_run


@pytest.fixture(scope="module")
def tiny_vocoder(tiny_run):
    return Vocoder.load(tiny_run[0] / "model")


def _units(voc: Vocoder, ids) -> Units:
    return Units(torch.tensor(ids, dtype=torch.long), voc.frame_rate, voc.n_units, voc.unit_space)


def test_training_loss_falls_and_exports(tiny_run):
    out, _ = tiny_run
    recs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    train = [r["total"] for r in recs if "total" in r]
    assert len(train) >= 4 and train[-1] < train[0] * 0.9
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["kind"] == "vocoder" and cfg["unit_space"].startswith("mfcc-k100-")
    assert cfg["training"]["holdout_voices"] == ["flite_rms"]
    assert "flite_rms" not in cfg["training"]["train_voices"]
    assert (out / "state.safetensors").exists()


def test_resume_after_interrupt_matches_uninterrupted(small_corpus, tmp_path, monkeypatch):
    from speechlm.train import vocoder as tv

    full = tv.train_vocoder(_cfg(small_corpus, tmp_path / "a", max_steps=10, ckpt_interval=5,
                                 eval_interval=5), progress=False)
    real = tv.make_batch

    def dies_at_step_7(data, seed, step, *a, **kw):
        if step == 7 and seed == 0:
            raise KeyboardInterrupt
        return real(data, seed, step, *a, **kw)

    cfg_b = _cfg(small_corpus, tmp_path / "b", max_steps=10, ckpt_interval=5, eval_interval=5)
    cfg_b["data"]["cache"] = str(tmp_path / "a" / "cache")  # same analysis
    monkeypatch.setattr(tv, "make_batch", dies_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        tv.train_vocoder(cfg_b, progress=False)
    monkeypatch.setattr(tv, "make_batch", real)
    resumed = tv.train_vocoder(cfg_b, progress=False)
    a = load_file(str(full / "state.safetensors"))
    b = load_file(str(resumed / "state.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_adversarial_critic_trains_beside_the_decoder_and_stays_out_of_the_export(small_corpus,
                                                                                    tmp_path):
    from speechlm.train import vocoder as tv

    cfg = _cfg(small_corpus, tmp_path / "a", max_steps=4, ckpt_interval=2, eval_interval=2,
               adversarial=0.5, feature_matching=2.0)
    task = tv.VocoderTask(cfg)
    task.prepare(False)
    torch.manual_seed(0)
    model = task.build(torch.device("cpu"), 0, 1)
    assert isinstance(model, tv.CriticVocoder)
    loss, m = task.loss(model, task.batch("train", 0, 0))
    assert {"critic", "adv", "fm"} <= set(m) and float(m["fm"].detach()) > 0
    torch.testing.assert_close(loss, m["total"] + m["critic"])
    dec = [p for p in model.vocoder.parameters() if p.requires_grad]
    crit = list(model.critic.parameters())
    # the critic's loss moves the critic only; the decoder's adversarial terms the decoder only
    assert all(g is None for g in torch.autograd.grad(m["critic"], dec, retain_graph=True,
                                                      allow_unused=True))
    assert all(g is None for g in torch.autograd.grad(m["adv"] + m["fm"], crit,
                                                      retain_graph=True, allow_unused=True))
    g_adv = torch.autograd.grad(m["adv"], model.vocoder.out.weight, retain_graph=True)[0]
    g_crit = torch.autograd.grad(m["critic"], model.critic.out.weight)[0]
    assert g_adv.abs().sum() > 0 and g_crit.abs().sum() > 0
    assert len(task.clip_groups(model)) == 2
    # a run: the export is a plain vocoder; the run state keeps the critic, and resumes
    run = tv.train_vocoder(cfg, progress=False)
    state = load_file(str(run / "state.safetensors"))
    assert any(k.startswith("model.critic.") for k in state)
    assert not any(k.startswith("model.vocoder.") for k in state)  # the decoder's own names
    voc = Vocoder.load(run / "model")
    assert voc.training["adversarial"] == 0.5 and voc.training["feature_matching"] == 2.0
    assert not any(k.startswith("critic") for k in voc.model.state_dict())
    longer = _cfg(small_corpus, tmp_path / "a", max_steps=6, ckpt_interval=2, eval_interval=2,
                  adversarial=0.5, feature_matching=2.0)
    tv.train_vocoder(longer, progress=False)
    assert json.loads((run / "state.json").read_text())["step"] == 6
    # the same run directory without the critic is refused, not silently mixed
    plain = _cfg(small_corpus, tmp_path / "a", max_steps=8)
    with pytest.raises(Exception, match="does not fit"):
        tv.train_vocoder(plain, progress=False)
    # refused when the recipe is read, before the corpus analysis
    with pytest.raises(DataError, match="feature_matching needs train.adversarial"):
        _cfg(small_corpus, tmp_path / "b", feature_matching=1.0)
    with pytest.raises(DataError, match="must be >= 0"):
        _cfg(small_corpus, tmp_path / "b", adversarial=-1)


def test_decode_length_determinism_and_range(tiny_vocoder, wav_file):
    from speechlm.audio import load_audio

    voc = tiny_vocoder
    voice = voc.voice(load_audio(wav_file(1.5)))
    u = _units(voc, [3, 3, 7, 9, 9, 9, 1] * 5)
    y1 = voc.decode(u, voice)
    y2 = voc.decode(u, voice)
    assert y1.shape == (len(u) * UPSAMPLE * HOP,)
    assert torch.equal(y1, y2)
    assert float(y1.abs().max()) <= 1.0
    # deduplicated units keep their durations
    d = u.dedup()
    assert voc.decode(d, voice).shape == y1.shape
    g = voc.decode(u, voice, method="griffinlim")
    assert g.shape[0] == pytest.approx(y1.shape[0], abs=HOP)


def test_batch_equals_stacked_items():
    cfg = VocoderConfig(n_units=20, unit_space="x", channels=16, pre_blocks=1, post_blocks=1,
                        spk_dim=8, spk_channels=8, dur_channels=8, dur_blocks=1, dropout=0.0)
    torch.manual_seed(0)
    m = UnitVocoder(cfg).eval()
    units = torch.randint(0, 20, (3, 25))
    spk = torch.randn(3, 8)
    f0 = torch.randn(3, 50, 3)
    with torch.no_grad():
        batched = m(units, spk, f0)
        single = torch.cat([m(units[i : i + 1], spk[i : i + 1], f0[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, 50, cfg.out_dim)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_duration_model_expands_dedup_units(tiny_vocoder, wav_file):
    from speechlm.audio import load_audio

    voc = tiny_vocoder
    voice = voc.voice(load_audio(wav_file(1.0)))
    d = Units(torch.tensor([1, 5, 2, 8]), voc.frame_rate, voc.n_units, voc.unit_space,
              torch.tensor([1, 1, 1, 1]))
    full = voc.expand(d, voice)
    assert not full.deduped and len(full) >= 4
    assert torch.equal(full.dedup().ids, d.ids)


def test_tempo_scales_predicted_durations_and_is_fitted_on_known_ones(tiny_vocoder, wav_file):
    import dataclasses

    from speechlm.audio import load_audio
    from speechlm.vocoder import TEMPO_RANGE

    voc = tiny_vocoder
    voice = voc.voice(load_audio(wav_file(1.0)))
    assert voice.tempo == 1.0
    ids = torch.randint(0, voc.n_units, (60,), generator=torch.Generator().manual_seed(0))
    base = voc.predict_durations(ids, voice)
    slow = voc.predict_durations(ids, dataclasses.replace(voice, tempo=1.5))
    assert 1.4 < float(slow.sum()) / float(base.sum()) < 1.6

    def known(tempo, n=len(ids)):
        d = voc.predict_durations(ids[:n], dataclasses.replace(voice, tempo=tempo))
        return Units(ids[:n], voc.frame_rate, voc.n_units, voc.unit_space, d)

    # durations the model would give at 1.5 are read back as 1.5 (rounding aside)
    assert voc.fit_tempo(known(1.5), voice) == pytest.approx(1.5, rel=0.05)
    assert voc.fit_tempo(known(1.0), voice) == pytest.approx(1.0, rel=0.05)
    # the first run (a recording's leading silence) does not count
    k = known(1.0)
    long_start = dataclasses.replace(k, durations=torch.cat([k.durations[:1] * 50,
                                                             k.durations[1:]]))
    assert voc.fit_tempo(long_start, voice) == voc.fit_tempo(k, voice)
    assert voc.fit_tempo(known(3.0), voice) == TEMPO_RANGE[1]  # clamped
    assert voc.fit_tempo(known(1.5, n=8), voice) == 1.0  # too few runs to tell
    with pytest.raises(ValueError, match="deduplicated"):
        voc.fit_tempo(Units(ids, voc.frame_rate, voc.n_units, voc.unit_space), voice)


def test_refuses_other_unit_space_and_bad_ids(tiny_vocoder, wav_file):
    from speechlm.audio import load_audio

    voc = tiny_vocoder
    voice = voc.voice(load_audio(wav_file(1.0)))
    other = Units(torch.tensor([1, 2]), voc.frame_rate, voc.n_units, "mfcc-k100-00000000")
    with pytest.raises(ModelError, match="unit space mismatch.*mfcc-k100-00000000"):
        voc.decode(other, voice)
    with pytest.raises(ValueError):
        Units(torch.tensor([[1]]), 50.0, 100, "x")


def test_silent_reference_is_refused(tiny_vocoder):
    from speechlm.errors import AudioError

    with pytest.raises(AudioError, match="silent"):
        tiny_vocoder.voice(torch.zeros(16000))


def test_tampered_weights_refused(tiny_run, tmp_path):
    import shutil

    from safetensors.torch import save_file

    src = tiny_run[0] / "model"
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    sd = load_file(str(bad / "model.safetensors"))
    sd.pop(next(iter(sd)))
    save_file(sd, str(bad / "model.safetensors"))
    with pytest.raises(ModelError, match="weights do not match"):
        Vocoder.load(bad)


def test_f0_conditioning_is_speaker_free():
    f0 = np.array([0, 100, 110, 120, 0, 130, 0], dtype=np.float32)
    c1 = f0_conditioning(f0, 8)
    c2 = f0_conditioning(f0 * 2, 8)  # one octave up: same normalized contour
    assert c1.shape == (8, 3)
    torch.testing.assert_close(c1, c2)
    assert c1[:, 1].tolist() == [0, 1, 1, 1, 0, 1, 0, 0]
    assert abs(float(c1[c1[:, 1] > 0, 0].mean())) < 1e-5
    s = log_f0_stats(f0)
    assert s[0] == pytest.approx(np.log([100, 110, 120, 130]).mean(), abs=1e-5)


def test_bad_config_keys():
    from speechlm.train.vocoder import load_config

    with pytest.raises(DataError, match="unknown config keys: train.nope"):
        load_config(TINY, ["--train.nope=1"])
    with pytest.raises(DataError, match="config not found"):
        load_config("configs/vocoder/missing.toml")


def test_parallel_world_synthesis_cuts_at_unvoiced_frames():
    from speechlm.audio import load_audio
    from speechlm.vocoder import _split_points, world_analysis, world_synthesize

    wav = load_audio("samples/flite_slt_arctic_a0004.wav").numpy()
    f0, sp, ap = world_analysis(wav)
    cuts = _split_points(f0, 2)
    assert cuts and all(f0[c] == 0 for c in cuts)
    one = world_synthesize(f0, sp, ap, threads=1)
    two = world_synthesize(f0, sp, ap, threads=2)
    assert one.shape == two.shape == (len(f0) * HOP,)
    # same spectrum (the pulse phase restarts at the cut, so samples differ)
    from speechlm.vocoder import MelSpectrogram

    mel = MelSpectrogram()
    n = min(len(one), len(wav))
    m1, m2, mx = (mel(torch.tensor(a[:n], dtype=torch.float32)[None])[0]
                  for a in (one, two, wav))
    assert float((m1 - m2).abs().mean()) < 0.5 * float((m1 - mx).abs().mean()) + 0.1
    assert abs(float(np.sqrt((one**2).mean())) - float(np.sqrt((two**2).mean()))) < 0.01
    assert _split_points(np.full(500, 120.0), 2) == []  # fully voiced: one piece


def test_cache_relabelled_from_another_cache(tiny_vocoder_run, small_corpus, tmp_path):
    """``data.feats_from``: the analysis is shared, the units are the new tokenizer's."""
    from speechlm.audio import load_audio
    from speechlm.cli import main
    from speechlm.data.manifest import read_manifest
    from speechlm.tokenizer import Tokenizer
    from speechlm.train.vocoder import build_cache, load_config

    _, work = tiny_vocoder_run
    assert main(["train", "tokenizer", "-q", "--corpus", str(small_corpus), "--features",
                 "logmel", "--k", "8", "--out", str(tmp_path / "logmel-k8")]) == 0
    cfg = load_config("configs/vocoder/tiny.toml", [
        f"--data.corpus={small_corpus}", f"--data.cache={tmp_path / 'cache'}",
        f"--data.tokenizer={tmp_path / 'logmel-k8'}", f"--data.feats_from={work / 'cache'}"])
    d, m = cfg["data"], VocoderConfig(**{**cfg["model"], "n_units": 8, "unit_space": "x"})
    cache = build_cache(d, m.sp_dim, m.n_mels, progress=False)
    tok = Tokenizer.load(tmp_path / "logmel-k8")
    for split in ("train", "valid"):
        old = json.loads((work / "cache" / f"{split}.json").read_text())
        new = json.loads((cache / f"{split}.json").read_text())
        assert new["utterances"] == old["utterances"]
        assert (new["unit_space"], new["n_units"]) == (tok.unit_space, 8)
        for name in ("feats", "f0"):
            assert np.array_equal(np.load(cache / f"{split}.{name}.npy"),
                                  np.load(work / "cache" / f"{split}.{name}.npy"))
    name, _, off, n = new["utterances"][-1]
    path = {u.name: u.path for u in read_manifest(small_corpus / "valid.tsv")}[name]
    units = np.load(cache / "valid.units.npy")[off : off + n]
    assert np.array_equal(units, tok.tokenize_wave(load_audio(path)).ids.numpy())
    d = {**d, "cache": str(tmp_path / "c2"), "feats_from": str(tmp_path / "nowhere")}
    with pytest.raises(DataError, match="feats_from.*not found"):
        build_cache(d, m.sp_dim, m.n_mels, progress=False)


def test_mel_only_vocoder_speaks_through_its_waveform_stage(small_corpus, tmp_path, wav_file):
    """model.sp_dim = ap_dim = 0: no WORLD analysis or heads; the harmonic-plus-noise stage
    (data.waveform) is exported inside the vocoder and is its default method."""
    import shutil

    from speechlm.audio import load_audio
    from speechlm.tokenizer import Tokenizer
    from speechlm.train.vocoder import load_config, train_vocoder
    from speechlm.waveform import HarmonicNoise, WaveformConfig, WaveformModel

    wave_dir = tmp_path / "hn"
    WaveformModel(HarmonicNoise(WaveformConfig(channels=16, blocks=1, n_harmonics=8,
                                               n_noise=8))).save(wave_dir)
    over = [f"--data.corpus={small_corpus}", f"--data.cache={tmp_path / 'cache'}",
            f"--train.out={tmp_path / 'run'}", "--model.sp_dim=0", "--model.ap_dim=0",
            "--train.max_steps=4", "--train.eval_interval=2", "--train.ckpt_interval=2"]
    with pytest.raises(DataError, match="data.waveform"):
        load_config("configs/vocoder/tiny.toml", over)
    with pytest.raises(DataError, match="both be 0"):
        load_config("configs/vocoder/tiny.toml", over[:3] + ["--model.sp_dim=0"])
    run = train_vocoder(load_config("configs/vocoder/tiny.toml",
                                    over + [f"--data.waveform={wave_dir}"]), progress=False)
    meta = json.loads((tmp_path / "cache" / "train.json").read_text())
    assert meta["sp_dim"] == 0
    voc = Vocoder.load(run / "model")
    assert voc.cfg.mel_only and voc.default_method == "hn" and voc.waveform is not None
    wav = load_audio(wav_file(1.5))
    units = Tokenizer.load("mfcc-k100").tokenize_wave(wav)
    y = voc.decode(units, voc.voice(wav))
    assert y.shape == (2 * 160 * len(units),) and torch.isfinite(y).all()
    with pytest.raises(ModelError, match="mel-only"):
        voc.decode(units, voc.voice(wav), method="world")
    shutil.rmtree(run / "model" / "waveform")
    with pytest.raises(ModelError, match="waveform stage"):
        Vocoder.load(run / "model")


def test_warm_start_continues_from_a_trained_vocoder(small_corpus, tmp_path):
    """model.init: the run starts from another vocoder's weights, statistics, frozen speaker
    network and waveform stage (with no learning rate it exports them unchanged); a different
    architecture or a data.speaker / data.waveform beside it is refused."""
    from speechlm.speaker import SpeakerConfig, SpeakerModel, SpeakerNet
    from speechlm.train.vocoder import load_config, train_vocoder
    from speechlm.waveform import HarmonicNoise, WaveformConfig, WaveformModel

    torch.manual_seed(0)
    WaveformModel(HarmonicNoise(WaveformConfig(channels=16, blocks=1, n_harmonics=8,
                                               n_noise=8))).save(tmp_path / "hn")
    SpeakerModel(SpeakerNet(SpeakerConfig(channels=16, blocks=2, dim=8)),
                 {"steps": 1}).save(tmp_path / "spk")
    base = [f"--data.corpus={small_corpus}", f"--data.cache={tmp_path / 'cache'}",
            "--model.sp_dim=0", "--model.ap_dim=0", "--train.max_steps=4",
            "--train.eval_interval=2", "--train.ckpt_interval=2"]
    first = train_vocoder(load_config(TINY, base + [
        f"--train.out={tmp_path / 'a'}", f"--data.waveform={tmp_path / 'hn'}",
        f"--data.speaker={tmp_path / 'spk'}"]), progress=False) / "model"
    init = Vocoder.load(first)
    frozen = load_config(TINY, base + [f"--train.out={tmp_path / 'b'}", f"--model.init={first}",
                                       "--train.lr=0", "--train.min_lr=0"])
    got = Vocoder.load(train_vocoder(frozen, progress=False) / "model")
    want = init.model.state_dict()
    assert set(got.model.state_dict()) == set(want)
    for k, v in got.model.state_dict().items():
        assert torch.equal(v, want[k]), k
    assert got.cfg == init.cfg and got.waveform is not None
    assert got.training["init"] == str(first)
    assert got.training["speaker"] == str(tmp_path / "spk")
    wave = init.waveform.model.state_dict()
    for k, v in got.waveform.model.state_dict().items():
        assert torch.equal(v, wave[k]), k
    # with a learning rate it trains on from there, not from scratch
    moved = Vocoder.load(train_vocoder(load_config(
        TINY, base + [f"--train.out={tmp_path / 'c'}", f"--model.init={first}"]),
        progress=False) / "model")
    delta = (moved.model.state_dict()["out.weight"] - want["out.weight"]).abs().max()
    assert 0 < float(delta) < 0.05 * float(want["out.weight"].abs().max())
    # grown: added blocks start as the identity, so with no learning rate it decodes as before
    grown = Vocoder.load(train_vocoder(load_config(TINY, base + [
        f"--train.out={tmp_path / 'g'}", f"--model.init={first}", "--model.pre_blocks=2",
        "--model.post_blocks=3", "--train.lr=0", "--train.min_lr=0"]), progress=False) / "model")
    assert grown.training["init_blocks_added"] == {"pre": 1, "post": 2}
    assert (len(grown.model.pre), len(grown.model.post)) == (2, 3)
    for k, v in want.items():
        assert torch.equal(grown.model.state_dict()[k], v), k
    assert not grown.model.state_dict()["post.2.proj.weight"].any()
    units = torch.randint(0, init.n_units, (1, 30))
    spk = torch.randn(1, init.cfg.spk_dim)
    with torch.no_grad():
        assert torch.allclose(grown.model(units, spk), init.model(units, spk), atol=1e-6)
    with pytest.raises(DataError, match="model.post_blocks.*added to a warm start, not removed"):
        load_config(TINY, base + [f"--model.init={tmp_path / 'g' / 'model'}",
                                  "--model.post_blocks=2"])
    with pytest.raises(DataError, match="leave data.speaker and data.waveform empty"):
        load_config(TINY, base + [f"--model.init={first}", f"--data.waveform={tmp_path / 'hn'}"])
    # refused when the recipe is read, before the corpus analysis
    with pytest.raises(DataError, match="architecture differs.*model.channels"):
        load_config(TINY, base + [f"--model.init={first}", "--model.channels=48"])
    with pytest.raises(DataError, match="model.init .*nowhere"):
        load_config(TINY, base + [f"--model.init={tmp_path / 'nowhere'}"])
    with pytest.raises(DataError, match="model.init"):  # a tokenizer is not a vocoder
        load_config(TINY, base + ["--model.init=mfcc-k100"])


def test_warm_start_carries_unit_embeddings_to_finer_units_of_the_same_features(small_corpus,
                                                                                  tmp_path):
    """model.init on other k-means units of the same features: each new unit's embedding rows
    start from those of the old unit nearest its centroid; units of other features are refused."""
    from speechlm.quantizer import KMeansQuantizer
    from speechlm.tokenizer import Tokenizer
    from speechlm.train.vocoder import UNIT_EMBEDDINGS, load_config, train_vocoder, unit_transfer

    old = Tokenizer.load("mfcc-k100")
    pick = torch.randperm(old.n_units, generator=torch.Generator().manual_seed(0))[:30]
    q = old.quantizer
    Tokenizer(old.encoder, KMeansQuantizer(q.centroids[pick], q.mean, q.std),
              training={"note": "a subset"}).save(tmp_path / "k30")
    assert torch.equal(unit_transfer("mfcc-k100", str(tmp_path / "k30")), pick)
    over = [f"--data.corpus={small_corpus}", "--train.max_steps=2", "--train.eval_interval=2",
            "--train.ckpt_interval=2"]
    first = train_vocoder(load_config(TINY, over + [f"--data.cache={tmp_path / 'c100'}",
                                                    f"--train.out={tmp_path / 'a'}"]),
                          progress=False) / "model"
    run = train_vocoder(load_config(TINY, over + [
        f"--data.cache={tmp_path / 'c30'}", f"--train.out={tmp_path / 'b'}",
        f"--data.tokenizer={tmp_path / 'k30'}", f"--model.init={first}", "--train.lr=0",
        "--train.min_lr=0"]), progress=False) / "model"
    got, base = Vocoder.load(run), Vocoder.load(first)
    assert got.n_units == 30 and got.unit_space != base.unit_space
    assert got.training["init_units"] == base.unit_space
    want, have = base.model.state_dict(), got.model.state_dict()
    for k, v in have.items():
        assert torch.equal(v, want[k][pick] if k in UNIT_EMBEDDINGS else want[k]), k
    with pytest.raises(DataError, match="same features"):
        unit_transfer("mfcc-k100", "phone-k100")


def test_frame_transfer_picks_the_old_unit_each_new_unit_shares_most_frames_with():
    from speechlm.train.vocoder import frame_transfer

    old = np.array([0, 0, 1, 1, 1, 2, 2, 0, 3])
    new = np.array([1, 1, 0, 0, 1, 2, 2, 2, 2])
    pick, agree = frame_transfer(old, new, 4, 4)
    # new 0 -> old 1 (2 frames); new 1 -> old 0 (2 of 3); new 2 -> old 2 (2 of 4);
    # new 3 is on no frame: the most frequent old unit (0 and 1 tie at 3: the first)
    assert pick.tolist() == [1, 0, 2, 0]
    assert agree == pytest.approx(6 / 9)
    with pytest.raises(DataError, match="same frames"):
        frame_transfer(old, new[:-1], 4, 4)
    with pytest.raises(DataError, match="out of range"):
        frame_transfer(old, new, 3, 4)


def test_warm_start_maps_units_frame_by_frame_through_a_relabelled_cache(small_corpus, tmp_path):
    """model.init on units of a tokenizer whose name now means other units (a bundled name
    after a default switch): refused by centroid, mapped frame by frame when the recipe's cache
    was relabelled (data.feats_from) from a cache of the init's units."""
    from speechlm.quantizer import KMeansQuantizer
    from speechlm.tokenizer import Tokenizer
    from speechlm.train.vocoder import (
        UNIT_EMBEDDINGS,
        frame_transfer,
        load_config,
        train_vocoder,
    )

    old = Tokenizer.load("mfcc-k100")
    old.save(tmp_path / "tok")  # "the default", as the init names it
    over = [f"--data.corpus={small_corpus}", "--train.max_steps=2", "--train.eval_interval=2",
            "--train.ckpt_interval=2"]
    first = train_vocoder(load_config(TINY, over + [
        f"--data.cache={tmp_path / 'c100'}", f"--train.out={tmp_path / 'a'}",
        f"--data.tokenizer={tmp_path / 'tok'}"]), progress=False) / "model"
    # the name now holds 40 other units (a "switch"; here a subset of the same features)
    pick = torch.randperm(old.n_units, generator=torch.Generator().manual_seed(1))[:40]
    q = old.quantizer
    Tokenizer(old.encoder, KMeansQuantizer(q.centroids[pick], q.mean, q.std),
              training={"note": "the switched default"}).save(tmp_path / "tok")
    run_over = over + [f"--data.tokenizer={tmp_path / 'tok'}", f"--model.init={first}",
                       "--train.lr=0", "--train.min_lr=0"]
    with pytest.raises(DataError, match="holds units of .*choose another data.cache"):
        train_vocoder(load_config(TINY, run_over + [f"--data.cache={tmp_path / 'c100'}",
                                                    f"--train.out={tmp_path / 'stale'}"]),
                      progress=False)
    with pytest.raises(DataError, match="now makes .*data.feats_from"):
        train_vocoder(load_config(TINY, run_over + [f"--data.cache={tmp_path / 'c40'}",
                                                    f"--train.out={tmp_path / 'b'}"]),
                      progress=False)
    run = train_vocoder(load_config(TINY, run_over + [
        f"--data.cache={tmp_path / 'c40f'}", f"--data.feats_from={tmp_path / 'c100'}",
        f"--train.out={tmp_path / 'c'}"]), progress=False) / "model"
    got, base = Vocoder.load(run), Vocoder.load(first)
    assert got.n_units == 40 and got.training["init_units"] == base.unit_space
    assert got.training["init_units_map"] == "frames"
    want_pick, agree = frame_transfer(np.load(tmp_path / "c100" / "train.units.npy"),
                                      np.load(tmp_path / "c40f" / "train.units.npy"), 100, 40)
    assert got.training["init_units_agreement"] == round(agree, 4) and 0 < agree <= 1
    want, have = base.model.state_dict(), got.model.state_dict()
    for k, v in have.items():
        assert torch.equal(v, want[k][want_pick] if k in UNIT_EMBEDDINGS else want[k]), k


def test_sampled_f0_contours_follow_their_distributions_smoothly():
    from speechlm.vocoder import f0_bin_centres, f0_bin_of, sample_f0_contour

    bins = 32
    centres = f0_bin_centres(bins)
    assert torch.equal(f0_bin_of(centres, bins), torch.arange(bins))
    assert int(f0_bin_of(torch.tensor([-99.0]), bins)) == 0
    assert int(f0_bin_of(torch.tensor([99.0]), bins)) == bins - 1
    peaked = torch.full((50, bins), -30.0)
    peaked[:, 7] = 30.0
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_f0_contour(peaked, g), centres[7].repeat(50))
    flat = torch.zeros(400, bins)
    a = sample_f0_contour(flat, torch.Generator().manual_seed(1))
    b = sample_f0_contour(flat, torch.Generator().manual_seed(1))
    c = sample_f0_contour(flat, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.std()) > 0.5  # it moves across the range ...
    assert float(a.diff().abs().mean()) < 0.25 * float(a.std())  # ... smoothly
    # spread 0: each frame's median bin, whatever the seed; in between, nearer the medians
    logits = torch.randn(400, bins, generator=torch.Generator().manual_seed(3))
    cdf = logits.softmax(-1).cumsum(-1)
    medians = centres[(cdf < 0.5 * cdf[:, -1:]).sum(-1)]
    for seed in (1, 2):
        got = sample_f0_contour(logits, torch.Generator().manual_seed(seed), spread=0.0)
        assert torch.equal(got, medians)
    draw = sample_f0_contour(logits, torch.Generator().manual_seed(1))
    assert torch.equal(draw, sample_f0_contour(logits, torch.Generator().manual_seed(1),
                                               spread=1.0))
    half = sample_f0_contour(logits, torch.Generator().manual_seed(1), spread=0.5)
    assert 0 < float((half - medians).abs().mean()) < float((draw - medians).abs().mean())


def test_f0_bins_vocoder_samples_with_its_seed(small_corpus, tmp_path, wav_file):
    from speechlm.audio import f0_track, load_audio
    from speechlm.tokenizer import Tokenizer
    from speechlm.train.vocoder import load_config, train_vocoder

    cfg = load_config(TINY, [f"--data.corpus={small_corpus}", f"--data.cache={tmp_path / 'c'}",
                             f"--train.out={tmp_path / 'run'}", "--model.f0_bins=16",
                             "--train.max_steps=4", "--train.eval_interval=2",
                             "--train.ckpt_interval=2"])
    voc = Vocoder.load(train_vocoder(cfg, progress=False) / "model")
    assert voc.cfg.f0_bins == 16
    wav = load_audio(wav_file(1.5))
    units, voice = Tokenizer.load("mfcc-k100").tokenize_wave(wav), voc.voice(wav)
    p1 = voc.parameters_for(units, voice, seed=1)
    assert p1["lf0_logits"].shape == (2 * len(units), 16)
    assert torch.equal(p1["lf0"], voc.parameters_for(units, voice, seed=1)["lf0"])
    assert not torch.equal(p1["lf0"], voc.parameters_for(units, voice, seed=2)["lf0"])
    f0 = f0_track(wav.numpy())  # with the source F0 the seed does not matter
    assert torch.equal(voc.parameters_for(units, voice, f0=f0, seed=1)["lf0"],
                       voc.parameters_for(units, voice, f0=f0, seed=2)["lf0"])
    y = voc.decode(units, voice, seed=3)
    assert y.shape == (HOP * 2 * len(units),) and torch.isfinite(y).all()
    voc.set_f0_spread(0)  # the medians: one contour for every seed, kept in config.json
    assert torch.equal(voc.parameters_for(units, voice, seed=1)["lf0"],
                       voc.parameters_for(units, voice, seed=2)["lf0"])
    voc.save(tmp_path / "v0")
    assert Vocoder.load(tmp_path / "v0").f0_spread == 0.0
    for bad in (-0.1, 1.5, float("nan"), None):
        with pytest.raises(ValueError, match="f0_spread must be a number in \\[0, 1\\]"):
            voc.set_f0_spread(bad)
    voc.set_f0_spread(1)
    # the drawn path's voicing threshold: the contour's voicing and the output's, not the
    # source-F0 path's
    plain = voc.parameters_for(units, voice, seed=1)
    voc.set_drawn_voicing_threshold(0.3)
    low = voc.parameters_for(units, voice, seed=1)
    assert float((low["vuv"] > 0.5).float().mean()) >= float((plain["vuv"] > 0.5).float().mean())
    assert not torch.equal(low["vuv"], plain["vuv"])
    assert torch.equal(voc.parameters_for(units, voice, f0=f0)["vuv"],
                       Vocoder.load(tmp_path / "v0").parameters_for(units, voice, f0=f0)["vuv"])
    voc.save(tmp_path / "v1")
    assert Vocoder.load(tmp_path / "v1").drawn_voicing_threshold == 0.3
    for bad in (0.0, 0.99, float("nan"), "x"):
        with pytest.raises(ValueError, match="drawn_voicing_threshold must be a number"):
            voc.set_drawn_voicing_threshold(bad)
    voc.set_drawn_voicing_threshold(0.5)
    # the source-F0 path's output F0: 0 the decoder's estimate, 1 the source contour at the
    # voice's level and range; the log-mel, the voicing and the drawn path are left alone
    from speechlm.vocoder import mix_source_log_f0

    est = voc.parameters_for(units, voice, f0=f0)
    voc.set_source_f0_weight(1)
    src = voc.parameters_for(units, voice, f0=f0)
    assert torch.equal(src["mel"], est["mel"]) and torch.equal(src["vuv"], est["vuv"])
    assert torch.equal(src["lf0"], mix_source_log_f0(est["lf0"], f0, voice.lf0_mean_std, 1.0))
    assert not torch.equal(src["lf0"], est["lf0"])
    assert torch.equal(voc.parameters_for(units, voice, seed=1)["lf0"], p1["lf0"])
    voc.save(tmp_path / "v2")
    assert Vocoder.load(tmp_path / "v2").source_f0_weight == 1.0
    for bad in (-0.1, 1.5, float("nan"), "x"):
        with pytest.raises(ValueError, match="source_f0_weight must be a number"):
            voc.set_source_f0_weight(bad)
    voc.set_source_f0_weight(0)
    # without F0: a contour is drawn from the first pass, then the decoder runs again
    # conditioned on it (as resynthesis is on the source's), its voicing smoothed
    from speechlm.vocoder import VOICING_SMOOTH, median_filter, sample_f0_contour

    with torch.no_grad():
        first = voc.model.split(voc.model(units.ids[None].long(), voice.vector[None]))
    first = {k: v[0] for k, v in first.items()}
    z = sample_f0_contour(first["lf0_logits"], torch.Generator().manual_seed(1))
    lf0 = z * voc.model.lf0_stats[1] + voc.model.lf0_stats[0]
    voiced = median_filter(first["vuv"] > 0.5, VOICING_SMOOTH)
    want = voc.parameters_for(units, voice, f0=torch.where(voiced, lf0.exp(), 0.0).numpy())
    assert torch.equal(p1["mel"], want["mel"]) and torch.equal(p1["vuv"], want["vuv"])
    # draw_f0 gives that contour (pitch on every frame, voicing), seeded as parameters_for
    hz, on = voc.draw_f0(units, voice, seed=1)
    assert np.allclose(hz, lf0.exp().numpy()) and np.array_equal(on, voiced.numpy())
    assert not np.allclose(voc.draw_f0(units, voice, seed=2)[0], hz)
    for bad in (-1, voc.n_units):
        with pytest.raises(ModelError, match="unit ids must be in"):
            voc.draw_f0(type(units)(torch.full((4,), bad), units.frame_rate, units.n_units,
                                    units.unit_space), voice)


def test_a_vocoder_without_f0_bins_draws_no_contour(tiny_vocoder, wav_file):
    from speechlm.audio import load_audio
    from speechlm.tokenizer import Tokenizer

    wav = load_audio(wav_file(1.0))
    units = Tokenizer.load("mfcc-k100").tokenize_wave(wav)
    with pytest.raises(ModelError, match="no f0_bins"):
        tiny_vocoder.draw_f0(units, tiny_vocoder.voice(wav))


def test_f0_parts_cross_the_drawn_contour_with_the_sources():
    """eval resynth's drawn-F0 split: each method's track takes pitch and voicing from the
    side it names; the source is cut or padded to the drawn length, its pitch interpolated in
    log through its unvoiced frames and held at the ends."""
    from speechlm.eval.resynth import f0_part

    hz = np.array([100.0, 110, 120, 130, 140, 150])
    on = np.array([True, True, False, False, True, True])
    src = np.array([0.0, 200, 0, 0, 400, 0, 999])  # one frame longer than the drawn contour
    assert np.array_equal(f0_part("hn-drawn-f0", (hz, on), src), [100, 110, 0, 0, 140, 150])
    assert np.array_equal(f0_part("hn-src-voicing", (hz, on), src), [0, 110, 0, 0, 140, 0])
    got = f0_part("hn-src-pitch", (hz, on), src)
    assert np.allclose(got, [200, 200, 0, 0, 400, 400])
    on2 = np.ones(6, dtype=bool)  # interpolated in log: geometric steps between 200 and 400
    assert np.allclose(f0_part("hn-src-pitch", (hz, on2), src)[1:5],
                       200 * 2 ** (np.arange(4) / 3))
    assert np.array_equal(f0_part("hn-src-pitch", (hz, on), np.zeros(3)),
                          f0_part("hn-drawn-f0", (hz, on), src))  # no source pitch: drawn
    with pytest.raises(ValueError, match="hn-drawn-f0"):
        f0_part("hn", (hz, on), src)


def test_mix_source_log_f0_moves_the_source_contour_to_the_voice():
    from speechlm.vocoder import mix_source_log_f0

    f0 = np.array([0, 100, 200, 100, 200, 0, 100, 200], dtype=np.float64)
    lf0 = torch.full((10,), 5.0)  # two frames longer than the source: unvoiced there
    stats = torch.tensor([math.log(150.0), 0.2])
    out = mix_source_log_f0(lf0, f0, stats, 1.0)
    voiced = torch.from_numpy(np.pad(f0, (0, 2)) > 0)
    assert torch.equal(out[~voiced], lf0[~voiced])
    assert out[voiced].mean().item() == pytest.approx(math.log(150.0), abs=1e-5)
    assert out[voiced].std().item() == pytest.approx(0.2, abs=1e-5)
    assert bool((out[[1, 3, 6]] < out[[2, 4, 7]]).all())  # the source's shape kept
    half = mix_source_log_f0(lf0, f0, stats, 0.5)
    assert torch.allclose(half[voiced], (lf0[voiced] + out[voiced]) / 2)
    assert torch.equal(mix_source_log_f0(lf0, f0, stats, 0.0), lf0)
    assert torch.equal(mix_source_log_f0(lf0, np.array([0, 120.0, 0]), stats, 1.0), lf0)


def test_median_filter_votes_out_one_frame_flicker():
    from speechlm.vocoder import median_filter

    v = torch.tensor([0, 1, 0, 0, 1, 1, 0, 1, 1, 1], dtype=torch.bool)
    assert median_filter(v, 3).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert median_filter(v, 1) is v and median_filter(v[:0], 5).numel() == 0
    x = torch.tensor([1.0, 9.0, 2.0, 3.0])
    assert median_filter(x, 3).tolist() == [1.0, 2.0, 3.0, 3.0]


def test_pretrained_speaker_encoder_stays_frozen_inside_the_vocoder(small_corpus, tmp_path,
                                                                    wav_file):
    """data.speaker: the speaker-verification network is copied into the vocoder, never
    trained (weights and BatchNorm statistics unchanged), saved with it and used by voice()."""
    from speechlm.audio import load_audio
    from speechlm.speaker import SpeakerConfig, SpeakerModel, SpeakerNet
    from speechlm.tokenizer import Tokenizer
    from speechlm.train.vocoder import load_config, train_vocoder

    torch.manual_seed(0)
    net = SpeakerNet(SpeakerConfig(channels=16, blocks=2, dim=8))
    with torch.no_grad():
        net.mel_mean.fill_(-4.0)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_()
    SpeakerModel(net, {"steps": 1}).save(tmp_path / "spk")
    over = [f"--data.corpus={small_corpus}", f"--data.cache={tmp_path / 'cache'}",
            f"--train.out={tmp_path / 'run'}", f"--data.speaker={tmp_path / 'spk'}",
            "--train.max_steps=3", "--train.eval_interval=3", "--train.ckpt_interval=3"]
    with pytest.raises(DataError):
        load_config("configs/vocoder/tiny.toml", over + ["--model.spk_net=1"])
    run = train_vocoder(load_config("configs/vocoder/tiny.toml", over), progress=False)
    voc = Vocoder.load(run / "model")
    assert voc.cfg.spk_net["dim"] == 8 and voc.training["speaker"] == str(tmp_path / "spk")
    ref = net.state_dict()
    got = voc.model.speaker.net.state_dict()
    assert set(ref) == set(got)
    for k, v in ref.items():
        assert torch.equal(v, got[k]), k
    wav = load_audio(wav_file(1.5))
    voice = voc.voice(wav)
    e = SpeakerModel(net).embed(wav)
    stats = voice.lf0_mean_std
    lf0 = voc.model.lf0_stats
    f0s = torch.stack([(stats[0] - lf0[0]) / lf0[1], stats[1] / lf0[1]])
    want = torch.tanh(voc.model.speaker.out(torch.cat([e, f0s])))
    assert torch.allclose(voice.vector, want, atol=1e-5)
    # padded references are embedded over their own frames only
    mel = voc.mel(wav[None])
    padded = torch.cat([mel, torch.zeros(1, 50, mel.shape[2])], dim=1)
    lengths = torch.tensor([mel.shape[1]])
    assert torch.allclose(voc.model.speaker.embed(padded, lengths),
                          voc.model.speaker.embed(mel, lengths), atol=1e-6)
    units = Tokenizer.load("mfcc-k100").tokenize_wave(wav)
    assert torch.isfinite(voc.decode(units, voice)).all()


def test_int8_weights_at_rest_round_trip(tmp_path):
    """quantize_int8 / dequantize_int8: per-row scales, error within half a step, small and
    kept tensors untouched; a vocoder saved with int8=True loads through the same path and
    decodes within a small distance of the float32 one."""
    from speechlm.checkpoint import INT8_SCALE, dequantize_int8, quantize_int8

    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 32, 5, generator=g) * torch.linspace(0.01, 3, 64)[:, None, None]
    q = quantize_int8({"w": w, "b": torch.randn(64, generator=g), "n": torch.arange(3),
                       "stats": torch.randn(2, 4096, generator=g)}, keep=lambda k: k == "stats")
    assert q["w"].dtype == torch.int8 and q["w" + INT8_SCALE].shape == (64,)
    assert q["b"].dtype == torch.float16 and q["n"].dtype == torch.int64
    assert q["stats"].dtype == torch.float32 and "stats" + INT8_SCALE not in q
    back = dequantize_int8(q)
    step = w.abs().reshape(64, -1).amax(1) / 127
    assert ((back["w"] - w).abs().reshape(64, -1).amax(1) <= step / 2 + 1e-6).all()
    assert set(back) == {"w", "b", "n", "stats"}
    with pytest.raises(ModelError, match="int8 scale"):
        dequantize_int8({"w": q["w"], "w" + INT8_SCALE: torch.ones(3)})

    torch.manual_seed(0)
    voc = Vocoder(UnitVocoder(VocoderConfig(n_units=16, unit_space="u16", channels=64,
                                            spk_dim=16, spk_channels=32, dur_channels=32)))
    voc.save(tmp_path / "f32")
    voc.save(tmp_path / "i8", int8=("",))
    voc.save(tmp_path / "spk8", int8=("speaker.",))
    size = {p: (tmp_path / p / "model.safetensors").stat().st_size for p in ("f32", "i8")}
    assert size["i8"] < 0.35 * size["f32"]
    assert json.loads((tmp_path / "i8" / "config.json").read_text())["stored_dtype"] == \
        "int8 (all), float16"
    spk8 = load_file(str(tmp_path / "spk8" / "model.safetensors"))
    assert {k for k, v in spk8.items() if v.dtype == torch.int8} == \
        {k for k in spk8 if k.startswith("speaker.") and k + INT8_SCALE in spk8}
    assert any(v.dtype == torch.int8 for v in spk8.values())
    assert spk8["post.0.conv.weight"].dtype == torch.float16
    a, b = Vocoder.load(tmp_path / "f32"), Vocoder.load(tmp_path / "i8")
    ids = torch.randint(0, 16, (1, 40), generator=g)
    spk = torch.randn(1, 16, generator=g)
    with torch.inference_mode():
        ya, yb = a.model(ids, spk), b.model(ids, spk)
    assert not torch.equal(ya, yb)
    assert float((ya - yb).pow(2).mean().sqrt()) < 0.05 * float(ya.std())


def test_long_term_spectrum_averages_speech_not_silence():
    from speechlm.vocoder import long_term_log_mel

    speech = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    silence = torch.full((6, 3), -11.5)  # the log floor: digital silence
    assert torch.allclose(long_term_log_mel(torch.cat([silence[:3], speech, silence[3:]])),
                          torch.tensor([1.0, 1.0, 1.0]))


def test_mel_contrast_scales_deviations_from_the_long_term_spectrum(tiny_vocoder, wav_file,
                                                                    tmp_path):
    from speechlm.audio import load_audio
    from speechlm.mel import LOG_FLOOR
    from speechlm.vocoder import long_term_log_mel

    voc = tiny_vocoder
    voice = voc.voice(load_audio(wav_file(1.5)))
    u = _units(voc, [3, 3, 7, 9, 9, 9, 1] * 5)
    assert voc.mel_contrast == 1.0  # a vocoder whose config does not ask for it
    plain = voc.parameters_for(u, voice)["mel"]
    try:
        sharp = voc.set_mel_contrast(1.5).parameters_for(u, voice)["mel"]
        voc.save(tmp_path / "v")
        assert Vocoder.load(tmp_path / "v").mel_contrast == 1.5
    finally:
        voc.set_mel_contrast(1.0)
    mean = long_term_log_mel(plain)
    want = (mean + 1.5 * (plain - mean)).clamp(min=math.log(LOG_FLOOR))
    assert float((sharp - plain).abs().max()) > 0.05
    assert torch.allclose(sharp, want, atol=1e-5)
    assert float(sharp.min()) >= math.log(LOG_FLOOR) - 1e-6  # never below the mel's floor
    assert torch.equal(voc.parameters_for(u, voice)["mel"], plain)
    for bad in (0.9, 2.5, float("nan"), None, "x"):
        with pytest.raises(ValueError, match="mel_contrast must be a number in \\[1, 2\\]"):
            voc.set_mel_contrast(bad)
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    cfg["mel_contrast"] = "sharp"
    (tmp_path / "v" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="mel_contrast must be a number"):
        Vocoder.load(tmp_path / "v")


def test_voiced_noise_cut_reaches_the_waveform_stage_and_the_config(tiny_vocoder, wav_file,
                                                                     tmp_path):
    from speechlm.audio import load_audio
    from speechlm.vocoder import _limit
    from speechlm.waveform import HarmonicNoise, WaveformConfig, WaveformModel

    voc = tiny_vocoder
    assert voc.voiced_noise_cut == 0.0  # a vocoder whose config does not ask for it
    torch.manual_seed(0)
    stage = WaveformModel(HarmonicNoise(WaveformConfig(n_mels=voc.cfg.n_mels, channels=16,
                                                       blocks=2, n_harmonics=8, n_noise=8)))
    before = voc.waveform
    voc.waveform = stage
    try:
        voice = voc.voice(load_audio(wav_file(1.5)))
        params = voc.parameters_for(_units(voc, [3, 3, 7, 9, 9, 9, 1] * 5), voice,
                                    f0=np.full(70, 150.0))
        plain = voc.synthesize(params, "hn")
        voc.set_voiced_noise_cut(1500)
        cut = voc.synthesize(params, "hn")
        f0 = torch.where(params["vuv"] > 0.5, torch.exp(params["lf0"]), 0.0)
        want = _limit(stage.synthesize(params["mel"], f0, voiced_noise_cut=1500))
        assert torch.allclose(cut, want, atol=1e-6)
        assert float((cut - plain).abs().max()) > 1e-4
        voc.save(tmp_path / "v")
        assert Vocoder.load(tmp_path / "v").voiced_noise_cut == 1500.0
    finally:
        voc.waveform = before
        voc.set_voiced_noise_cut(0)
    for bad in (-1, 4001, float("nan"), None, "x"):
        with pytest.raises(ValueError, match="voiced_noise_cut_hz must be a number in "
                                             "\\[0, 4000\\]"):
            voc.set_voiced_noise_cut(bad)
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    cfg["voiced_noise_cut_hz"] = -5
    (tmp_path / "v" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="voiced_noise_cut_hz must be a number"):
        Vocoder.load(tmp_path / "v")


def test_denoised_long_term_spectrum_takes_a_noise_floor_out():
    """A voice reference's LTAS (denoise=True): a clean recording keeps its spectrum; white
    noise that fills the weak bands of a tilted spectrum is taken out again."""
    from speechlm.vocoder import long_term_log_mel

    speech = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    silence = torch.full((6, 3), -11.5)
    clean = torch.cat([silence[:3], speech, silence[3:]])
    assert torch.allclose(long_term_log_mel(clean, denoise=True), torch.tensor([1.0, 1.0, 1.0]),
                          atol=1e-6)
    g = torch.Generator().manual_seed(0)
    bands = torch.arange(24.0)
    # 80 speech frames whose power falls 40 dB across the bands, then 20 frames of pause
    s_power = torch.exp(-0.4 * bands) * torch.exp(0.5 * torch.randn(80, 24, generator=g))
    s_power = torch.cat([s_power, torch.zeros(20, 24)])
    truth = (0.5 * torch.log(s_power[:80])).mean(0)
    n_power = 1e-3 * torch.randn(100, 24, 16, generator=g).pow(2).mean(-1)  # white noise
    noisy = 0.5 * torch.log(s_power + n_power)
    plain_err = (long_term_log_mel(noisy) - truth).abs()
    err = (long_term_log_mel(noisy, denoise=True) - truth).abs()
    # the noise fills the weakest bands, and its pauses pull the strongest down
    assert float(plain_err[-6:].mean()) > 0.5 and float(plain_err[:6].mean()) > 0.3
    assert float(err[-6:].mean()) < 0.3 * float(plain_err[-6:].mean())
    assert float(err[:6].mean()) < 0.02
    # nothing above the noise: the plain average, finite
    flat = 0.5 * torch.log(n_power)
    assert torch.equal(long_term_log_mel(flat, denoise=True), long_term_log_mel(flat))
    one = torch.tensor([[0.5, -1.0, 2.0]])
    assert torch.equal(long_term_log_mel(one, denoise=True), one[0])


def test_timbre_matching_moves_the_outputs_spectrum_to_the_references(tiny_vocoder, wav_file,
                                                                       tmp_path):
    from speechlm.audio import load_audio
    from speechlm.vocoder import long_term_log_mel

    voc = tiny_vocoder
    voice = voc.voice(load_audio(wav_file(1.5)))
    assert voice.log_mel_mean.shape == (voc.cfg.n_mels,)
    u = _units(voc, [3, 3, 7, 9, 9, 9, 1] * 5)
    assert voc.timbre_match == 0.0  # a vocoder whose config does not ask for it
    plain = voc.parameters_for(u, voice)["mel"]
    try:
        full = voc.set_timbre_match(1.0).parameters_for(u, voice)["mel"]
        half = voc.set_timbre_match(0.5).parameters_for(u, voice)["mel"]
        voc.save(tmp_path / "v")
        assert Vocoder.load(tmp_path / "v").timbre_match == 0.5
    finally:
        voc.set_timbre_match(0.0)
    gap = voice.log_mel_mean - long_term_log_mel(plain)
    assert float(gap.abs().max()) > 0.1  # there is something to match
    # one gain per mel band over the whole output, the same at every frame
    assert torch.allclose(long_term_log_mel(full), voice.log_mel_mean, atol=1e-4)
    assert torch.allclose(full - plain, gap.expand_as(plain), atol=1e-4)
    assert torch.allclose(half - plain, 0.5 * gap.expand_as(plain), atol=1e-4)
    assert torch.equal(voc.parameters_for(u, voice)["mel"], plain)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="timbre_match"):
            voc.set_timbre_match(bad)
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    for bad in (3, None, "loud"):
        cfg["timbre_match"] = bad
        (tmp_path / "v" / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(ModelError, match="timbre_match must be a number"):
            Vocoder.load(tmp_path / "v")


def test_voice_adaptation_fits_the_reference_and_leaves_the_network_alone(tiny_vocoder,
                                                                           wav_file, tmp_path):
    from speechlm.audio import f0_track, load_audio
    from speechlm.tokenizer import Tokenizer

    voc = tiny_vocoder
    assert voc.voice_adapt_steps == 0  # a vocoder whose config does not ask for it
    wav = load_audio(wav_file(1.5))
    tok = Tokenizer.load(voc.training["tokenizer"])
    units = tok.tokenize_wave(wav)
    plain = voc.voice(wav)
    assert plain.adapted_vector is None and plain.film_offsets is None
    weights = {k: v.clone() for k, v in voc.model.state_dict().items()}
    trainable = [p.requires_grad for p in voc.model.parameters()]

    def ref_loss(voice):  # what adaptation minimizes, through the public decode path
        p = voc.parameters_for(units, voice, f0=f0_track(wav.numpy()))
        target = voc.mel(wav[None])[0]
        n = min(len(p["mel"]), len(target))
        return float((p["mel"][:n] - target[:n]).abs().mean())

    fitted = voc.adapt_voice(plain, wav, units, steps=10)
    assert ref_loss(fitted) < ref_loss(plain) - 1e-3
    assert len(fitted.film_offsets) == len(voc.model.pre) + len(voc.model.post)
    assert all(float(o.abs().max()) > 0 for o in fitted.film_offsets)
    # the network is untouched; the duration model keeps the encoder's vector
    assert all(torch.equal(v, voc.model.state_dict()[k]) for k, v in weights.items())
    assert [p.requires_grad for p in voc.model.parameters()] == trainable
    assert torch.equal(fitted.vector, plain.vector)
    ids = torch.tensor([3, 7, 9, 1, 4])
    assert torch.equal(voc.predict_durations(ids, fitted), voc.predict_durations(ids, plain))
    # deterministic, and what voice() gives with the setting on (its own tokenizer)
    again = voc.adapt_voice(plain, wav, units, steps=10)
    assert torch.equal(again.adapted_vector, fitted.adapted_vector)
    try:
        voc.set_voice_adapt_steps(10)
        via_voice = voc.voice(wav)
        assert torch.equal(via_voice.adapted_vector, fitted.adapted_vector)
        assert all(torch.equal(a, b) for a, b in zip(via_voice.film_offsets,
                                                      fitted.film_offsets))
        voc.save(tmp_path / "v")
        assert Vocoder.load(tmp_path / "v").voice_adapt_steps == 10
    finally:
        voc.set_voice_adapt_steps(0)
    y0, y1 = voc.decode(units, plain), voc.decode(units, fitted)
    assert len(y0) == len(y1) and float((y0 - y1).abs().max()) > 1e-4
    assert voc.adapt_voice(plain, wav, units, steps=0) is plain
    with pytest.raises(ModelError, match="frame-rate units"):
        voc.adapt_voice(plain, wav, units.dedup(), steps=2)
    import dataclasses

    with pytest.raises(ModelError, match="another vocoder"):
        voc.decode(units, dataclasses.replace(fitted, film_offsets=fitted.film_offsets[:-1]))
    for bad in (-1, 201, 2.5, float("nan"), None, "x", True):
        with pytest.raises(ValueError, match="voice_adapt_steps must be a "):
            voc.set_voice_adapt_steps(bad)
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    cfg["voice_adapt_steps"] = 1.5
    (tmp_path / "v" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="voice_adapt_steps must be a whole number"):
        Vocoder.load(tmp_path / "v")


@pytest.mark.parametrize("recipe", sorted(str(p) for p in Path("configs/vocoder").glob("*.toml")))
def test_every_vocoder_recipe_reads(recipe):
    """Each shipped recipe parses and passes its checks (keys, model.init beside data.speaker);
    each names its data: a corpus, or (the contour model) the analysed corpus it reads."""
    from speechlm.train.vocoder import load_config

    cfg = load_config(recipe)
    assert cfg["train"]["out"] and (cfg["data"].get("corpus") or cfg["data"].get("cache"))


def test_warp_mel_stretches_the_band_axis():
    from speechlm.train.vocoder import warp_mel

    x = np.zeros((2, 80), np.float32)
    x[:, 30] = 1.0  # a "formant" at band 30
    assert np.array_equal(warp_mel(x, 1.0), x)
    up, down = warp_mel(x, 1.1), warp_mel(x, 0.9)
    assert up.shape == down.shape == x.shape
    assert 32 <= int(np.argmax(up[0])) <= 34 and 26 <= int(np.argmax(down[0])) <= 28
    ramp = np.tile(np.arange(80, dtype=np.float32), (3, 1))
    assert np.all(np.diff(warp_mel(ramp, 0.88), axis=1) >= 0)  # order kept, edges repeated
    assert warp_mel(ramp, 0.88)[0, -1] == 79 and warp_mel(ramp, 1.12)[0, 0] == 0


def test_warped_batches_change_voices_only_and_leave_the_rest(tmp_path):
    """train.warp_prob: the warped crops' target and reference log-mel change together; units,
    F0, masks and which crops are drawn stay those of the unwarped batch (so a run without
    warping draws the batches it always drew)."""
    from test_cache_pack import _cache

    from speechlm.train.vocoder import BATCH_DEFAULTS, CacheSplit, make_batch

    data = CacheSplit(_cache(tmp_path / "c"), "train")
    t = dict(BATCH_DEFAULTS, batch_size=8, crop_frames=16)
    plain = make_batch(data, 0, 5, t, 0, 0)
    again = make_batch(data, 0, 5, dict(t, warp_prob=0.0, warp_range=0.3), 0, 0)
    for k in plain:
        assert torch.equal(plain[k], again[k]), k
    warped = make_batch(data, 0, 5, dict(t, warp_prob=1.0), 0, 0)
    for k in ("units", "f0", "mask", "f0_in", "ref_len", "ref_stats", "dur_ids", "dur_tgt"):
        assert torch.equal(plain[k], warped[k]), k
    changed = [not torch.equal(plain["feats"][b], warped["feats"][b]) for b in range(8)]
    assert all(changed)
    assert all(not torch.equal(plain["ref_mel"][b], warped["ref_mel"][b]) for b in range(8))
    half = make_batch(data, 0, 5, dict(t, warp_prob=0.5), 0, 0)
    n = sum(not torch.equal(plain["feats"][b], half["feats"][b]) for b in range(8))
    assert 0 < n < 8


def test_the_task_warps_training_batches_only(tmp_path):
    """Validation always reads real voices: a warping recipe's valid batches are unwarped."""
    from types import SimpleNamespace

    from test_cache_pack import _cache

    from speechlm.train.vocoder import BATCH_DEFAULTS, CacheSplit, VocoderTask, make_batch

    data = CacheSplit(_cache(tmp_path / "c"), "train")
    t = dict(BATCH_DEFAULTS, batch_size=4, crop_frames=16, warp_prob=1.0)
    task = VocoderTask({"data": {}, "train": t, "model": {"sp_dim": 0}})
    task.splits = {"train": data, "valid": data}
    task.mcfg = SimpleNamespace(sp_dim=0, ap_dim=0)
    real = make_batch(data, 0, 2, dict(t, warp_prob=0.0), 0, 0)
    assert torch.equal(task.batch("valid", 0, 2)["feats"], real["feats"])
    assert not torch.equal(task.batch("train", 0, 2)["feats"], real["feats"])


@pytest.mark.parametrize("bad", ["--train.warp_prob=1.5", "--train.warp_prob=-0.1",
                                 "--train.warp_range=0.5", "--train.warp_range=-0.1"])
def test_warp_settings_out_of_range_are_refused(bad):
    from speechlm.errors import DataError
    from speechlm.train.vocoder import load_config

    with pytest.raises(DataError, match="warp_prob must be in"):
        load_config(Path(__file__).resolve().parents[1] / "configs" / "vocoder"
                    / "phone-cpu-warp.toml", [bad])


def test_train_subset_keeps_the_chosen_base_voices_and_draws_a_seeded_count(tmp_path):
    """data.base_voices / data.train_utterances: the identities of the named base voices (an
    identity is its base voice up to the first "-"), then a seeded draw of N of them; unknown
    voices and more utterances than the voices hold are refused; a selected split reads the
    same frames as before."""
    from test_cache_pack import _cache

    from speechlm.errors import DataError
    from speechlm.train.vocoder import CacheSplit, base_voice, train_subset

    assert base_voice("mbrola_us1-f108p94g125r92") == "mbrola_us1"
    assert base_voice("mbrola_us1") == "mbrola_us1"
    data = CacheSplit(_cache(tmp_path / "c", voices=("a", "a-f92p88", "b", "c"), per_voice=5),
                      "train")
    keep = train_subset(data, ["a"], 0, 0)
    assert len(keep) == 10 and {data.utts[i][1] for i in keep} == {"a", "a-f92p88"}
    drawn = train_subset(data, ["a", "b"], 7, 0)
    assert len(drawn) == 7 and drawn == sorted(drawn)
    assert {base_voice(data.utts[i][1]) for i in drawn} <= {"a", "b"}
    assert drawn == train_subset(data, ["a", "b"], 7, 0)
    assert drawn != train_subset(data, ["a", "b"], 7, 1)
    assert len(train_subset(data, [], 12, 0)) == 12
    assert train_subset(data, [], 0, 0) == list(range(20))
    with pytest.raises(DataError, match="z not in the train split"):
        train_subset(data, ["a", "z"], 0, 0)
    with pytest.raises(DataError, match="train_utterances = 11, but the chosen voices have 10"):
        train_subset(data, ["a"], 11, 0)
    before = [data.item(i) for i in drawn]
    data.select(drawn)
    assert len(data) == 7
    for i, (u, f, f0) in enumerate(before):
        u2, f2, f02 = data.item(i)
        assert np.array_equal(u, u2) and np.array_equal(f, f2) and np.array_equal(f0, f02)
    assert sorted(i for v in data.by_speaker.values() for i in v) == list(range(7))


def test_batch_utterances_names_the_utterance_of_each_row(tmp_path):
    """batch_utterances: each row of make_batch's batch is a crop of the utterance it names."""
    from test_cache_pack import _cache

    from speechlm.train.vocoder import BATCH_DEFAULTS, CacheSplit, batch_utterances, make_batch

    data = CacheSplit(_cache(tmp_path / "c", per_voice=6), "train")
    t = dict(BATCH_DEFAULTS, batch_size=8, crop_frames=8)
    for step in (0, 3):
        b = make_batch(data, 2, step, t, 0, 0)
        rows = batch_utterances(data, 2, step, 8)
        assert len(rows) == 8
        for crop, i in zip(b["units"].numpy(), rows):
            u = np.asarray(data.item(i)[0], dtype=np.int64)
            assert any(np.array_equal(u[s:s + 8], crop) for s in range(len(u) - 7))


@pytest.mark.parametrize("bad", ['--data.base_voices="a"', "--data.base_voices=[1]",
                                 "--data.train_utterances=-1", "--data.train_utterances=1.5",
                                 "--data.train_utterances=true"])
def test_voice_subset_settings_of_the_wrong_kind_are_refused(bad):
    from speechlm.errors import DataError
    from speechlm.train.vocoder import load_config

    with pytest.raises(DataError, match="base_voices must be a list|train_utterances must be"):
        load_config(Path(__file__).resolve().parents[1] / "configs" / "vocoder"
                    / "phone-cpu-voices.toml", [bad])


def test_a_voice_subset_trains_on_those_voices_and_says_so(small_corpus, tmp_path):
    """The task keeps the chosen voices' train utterances only (valid unchanged) and records
    the choice in the training record."""
    from speechlm.train import vocoder as tv

    cfg = _cfg(small_corpus, tmp_path / "a", max_steps=2)
    task = tv.VocoderTask(cfg)
    task.prepare(False)
    task.build(torch.device("cpu"), 0, 1)
    voices = sorted({tv.base_voice(s) for s in task.splits["train"].by_speaker})
    n_valid = len(task.splits["valid"])
    cfg["data"].update(base_voices=voices[:1], train_utterances=3)
    task = tv.VocoderTask(cfg)
    task.prepare(False)
    task.build(torch.device("cpu"), 0, 1)
    assert len(task.splits["train"]) == 3 and len(task.splits["valid"]) == n_valid
    assert {tv.base_voice(s) for s in task.splits["train"].by_speaker} == {voices[0]}
    assert task.training["base_voices"] == voices[:1]
    assert task.training["train_utterances"] == 3
    assert task.training["train_voices"] == sorted(task.splits["train"].by_speaker)
