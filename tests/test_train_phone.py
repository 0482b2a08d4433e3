"""Phone-supervised encoder: crops and labels under speed perturbation, the objective switch of
``speechlm train encoder``, the exported phone encoder as tokenizer features (posteriors, a
layer), a self-contained tokenizer directory, and a resumed run equal to an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from speechlm.audio import FRAME_SIZE, HOP_SIZE
from speechlm.errors import DataError, ModelError
from speechlm.features import encoder_from_name, num_frames
from speechlm.train.encoder import load_config, objective_of, train_encoder
from speechlm.train.phone import (
    IGNORE,
    PHONE_ID,
    PHONES,
    crop_samples,
    ctc_targets,
    plan_batch,
    resample_to,
    voice_weights,
)

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "encoder" / "phone-tiny.toml"


pytestmark = pytest.mark.usefixtures("one_thread")


def overrides(corpus, out, **train):
    return [f"--data.corpus={corpus}", "--data.max_utterances=0", f"--train.out={out}",
            "--train.threads=1"] + [f"--train.{k}={v}" for k, v in train.items()]


@pytest.fixture(scope="module")
def phone_run(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("phone") / "run"
    cfg = load_config(TINY, overrides(small_corpus, out))
    return train_encoder(cfg, progress=False)


def test_phone_set_is_arpabet_plus_silence():
    assert len(PHONES) == 40 and PHONES[-1] == "SIL" and "AA" in PHONE_ID and "SPN" not in PHONE_ID


def test_plan_batch_is_a_pure_function_of_seed_and_index():
    samples = np.array([16000, 48000, 9000, 64000])
    a = plan_batch(3, 7, samples, 8, 100, 0.8, (0.78, 1.28))
    b = plan_batch(3, 7, samples, 8, 100, 0.8, (0.78, 1.28))
    c = plan_batch(3, 8, samples, 8, 100, 0.8, (0.78, 1.28))
    for k in ("utt", "num", "start", "need"):
        assert np.array_equal(a[k], b[k])
    assert not all(np.array_equal(a[k], c[k]) for k in ("utt", "num", "start"))
    assert a["frames"] == 100
    assert ((a["num"] >= 78) & (a["num"] <= 128)).all()
    # every read stays inside its utterance
    assert (a["start"] >= 0).all() and (a["start"] + a["need"] <= samples[a["utt"]]).all()


def test_voice_weights_share_the_draws_between_voices_by_balance():
    voices = ["a"] * 6 + ["b"] * 3 + ["c"]
    assert voice_weights(voices, 0.0) is None  # every utterance alike: the old draws
    root = np.sqrt([6, 3, 1])
    for balance, shares in ((1.0, [1 / 3] * 3), (0.5, root / root.sum())):
        w = voice_weights(voices, balance)
        assert w.shape == (10,) and np.isclose(w.sum(), 1.0)
        got = [w[:6].sum(), w[6:9].sum(), w[9]]
        assert np.allclose(got, shares)
        assert np.allclose(w[:6], w[0]) and np.allclose(w[6:9], w[6])  # alike within a voice
    samples = np.full(10, 64000)
    w = voice_weights(voices, 1.0)
    a = plan_batch(3, 7, samples, 3000, 100, 0.8, (0.78, 1.28), weights=w)
    b = plan_batch(3, 7, samples, 3000, 100, 0.8, (0.78, 1.28), weights=w)
    assert np.array_equal(a["utt"], b["utt"])  # still a pure function of (seed, index)
    assert abs((a["utt"] == 9).mean() - 1 / 3) < 0.04  # the lone utterance of c: a third
    uniform = plan_batch(3, 7, samples, 3000, 100, 0.8, (0.78, 1.28))
    assert abs((uniform["utt"] == 9).mean() - 0.1) < 0.03
    pairs = plan_batch(3, 7, samples, 3000, 100, 0.8, (0.78, 1.28), pairs=True, weights=w)
    assert np.array_equal(pairs["utt"][0::2], pairs["utt"][1::2])
    assert abs((pairs["utt"] == 9).mean() - 1 / 3) < 0.05


def test_no_speed_perturbation_reads_exactly_one_crop():
    p = plan_batch(0, 0, np.array([80000]), 4, 50, 0.0, (0.78, 1.28))
    assert (p["num"] == p["den"]).all()
    assert (p["need"] == crop_samples(50) + 1).all()


def test_resample_moves_a_tone_by_the_speed_factor():
    sr, f = 16000, 500.0
    t = torch.arange(sr * 2) / sr
    tone = torch.sin(2 * torch.pi * f * t)
    out = resample_to(tone, 125, 100, sr)  # 125 source samples -> 100: pitch x1.25
    spec = torch.fft.rfft(out * torch.hann_window(out.numel())).abs()
    peak = float(spec.argmax()) * sr / out.numel()
    assert abs(peak - f * 1.25) < 5
    assert resample_to(tone[:100], 100, 100, 300).shape == (300,)  # zero-padded


def test_ctc_targets_merge_repeats_and_drop_unlabelled():
    """An unlabelled run (an unknown phone) separates two segments of the same phone."""
    y = torch.tensor([[1, 1, IGNORE, 2, 2, 1], [3, 3, 3, IGNORE, IGNORE, 3]])
    flat, lengths = ctc_targets(y)
    assert lengths.tolist() == [3, 2]
    assert flat.tolist() == [1, 2, 1, 3, 3]


def test_objective_picks_the_trainer(tmp_path):
    assert objective_of(TINY) == "phone"
    assert objective_of(REPO / "configs" / "encoder" / "tiny.toml") == "hubert"
    assert objective_of(REPO / "configs" / "encoder" / "tiny.toml", ["--model.objective=phone"]) \
        == "phone"
    with pytest.raises(DataError, match="objective"):
        objective_of(TINY, ["--model.objective=ssl"])
    with pytest.raises(DataError, match="data.speed"):
        load_config(TINY, ["--data.speed=[1.2, 1.5]"])
    with pytest.raises(DataError, match="unknown config keys"):
        load_config(TINY, ["--model.mask_prob=0.5"])


def test_labels_follow_the_speed_factor(small_corpus, tmp_path):
    """A crop's frame labels are the alignment read at the perturbed source positions."""
    from speechlm.train.phone import PhoneTask

    cfg = load_config(TINY, overrides(small_corpus, tmp_path / "r") + ["--data.augment=false"])
    task = PhoneTask(cfg)
    task.build(torch.device("cpu"), 0, 1)
    batch = task.batch("train", 0, 0)
    wav, y, mask, spk, scale = batch.wav, batch.y, batch.mask, batch.spk, batch.adv_scale
    assert batch.frame_loss is None  # no forced labels: every crop trains both losses
    assert (spk == IGNORE).all() and scale == 0.0  # no speaker adversary unless asked for
    assert mask is None  # SpecAugment is off unless the recipe asks for it
    n = num_frames(wav.shape[1])
    assert wav.shape == (4, crop_samples(n)) and y.shape == (4, n)
    p = plan_batch(0, 0, task.sets["train"].samples, 4, task.crop_frames, 0.8, (0.78, 1.28))
    s = task.sets["train"]
    for b in range(4):
        i, a, num = int(p["utt"][b]), int(p["start"][b]), int(p["num"][b])
        pos = a + (np.arange(n) * HOP_SIZE + FRAME_SIZE // 2) * num // 100
        want = s.labels_at(i, pos)
        want[pos >= s.samples[i]] = PHONE_ID["SIL"]
        assert np.array_equal(y[b].numpy(), want)
    assert (y != IGNORE).float().mean() > 0.9


def test_spec_masks_are_seeded_bounded_and_off_by_default():
    from speechlm.train.phone import spec_masks

    assert spec_masks(1, 4, 150, 80, (0, 10), (0, 5)) is None
    assert spec_masks(1, 4, 150, 80, (2, 0), (2, 0)) is None
    a = spec_masks(1, 64, 150, 80, (2, 10), (0, 0))
    assert torch.equal(a, spec_masks(1, 64, 150, 80, (2, 10), (0, 0)))
    assert not torch.equal(a, spec_masks(2, 64, 150, 80, (2, 10), (0, 0)))
    # frequency masks only: whole bands, the same bins in every frame, at most 2 x 10 of 80
    assert torch.equal(a, a[:, :1].expand_as(a))
    per_row = a[:, 0].sum(-1)
    assert per_row.max() <= 20 and per_row.float().mean() > 3
    t = spec_masks(3, 64, 150, 80, (0, 0), (3, 8))
    assert torch.equal(t, t[:, :, :1].expand_as(t))  # whole frames
    assert t[:, :, 0].sum(-1).max() <= 24


def test_spec_augment_masks_train_batches_and_fills_with_the_crop_mean(small_corpus, tmp_path):
    from speechlm.train.phone import PhoneTask

    spec = ["--data.spec_freq_masks=2", "--data.spec_freq_width=12", "--data.spec_time_masks=2",
            "--data.spec_time_width=6"]
    cfg = load_config(TINY, overrides(small_corpus, tmp_path / "r") + spec)
    task = PhoneTask(cfg)
    model = task.build(torch.device("cpu"), 0, 1).eval()
    batch = task.batch("train", 0, 0)
    wav, y, mask = batch.wav, batch.y, batch.mask
    assert mask is not None and mask.shape == (*y.shape, 80) and mask.any()
    assert torch.equal(mask, task.batch("train", 0, 0)[2])  # a pure function of (seed, step)
    assert task.batch("valid", 1, 0)[2] is None  # validation sees the plain input
    plain, _, adv = model(wav)
    assert adv is None
    assert torch.equal(plain, model(wav, torch.zeros_like(mask))[0])
    masked = model(wav, mask)[0]
    assert not torch.allclose(plain, masked)
    # what the transformer is given: masked entries hold the crop's mean, the rest the log-mel
    seen = []
    hook = model.encoder.encoder.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    model(wav, mask)
    hook.remove()
    feats, _ = model.encoder.feature_extractor(wav, None)
    mean = feats.mean(dim=(1, 2), keepdim=True).expand_as(feats)
    assert torch.equal(seen[0][mask], mean[mask]) and torch.equal(seen[0][~mask], feats[~mask])
    with pytest.raises(DataError, match="spec_freq_width"):
        load_config(TINY, ["--data.spec_freq_masks=1", "--data.spec_freq_width=80"])
    with pytest.raises(DataError, match="spec_time_masks"):
        load_config(TINY, ["--data.spec_time_masks=-1"])


def test_training_exports_a_phone_encoder_that_tokenizes(phone_run, small_corpus, tmp_path):
    from speechlm.data.manifest import read_manifest
    from speechlm.ssl.phone import PhoneEncoder
    from speechlm.tokenizer import Tokenizer
    from speechlm.train.tokenizer import train_tokenizer

    model = phone_run / "model"
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["phone_head"]["phones"] == list(PHONES)
    assert cfg["training"]["objective"] == "phone"
    log = [json.loads(line) for line in (phone_run / "log.jsonl").read_text().splitlines()]
    assert any("valid" in r and "acc" in r["valid"] for r in log)

    enc = encoder_from_name(str(model))
    assert isinstance(enc, PhoneEncoder) and enc.dim == 40
    wav = torch.randn(2, 16000)
    post = enc(wav)
    assert post.shape == (2, num_frames(16000), 40)
    assert torch.allclose(post.sum(-1), torch.ones(2, num_frames(16000)), atol=1e-4)
    assert encoder_from_name(str(model), "2").dim == 32  # a layer of the tiny model
    with pytest.raises(ModelError, match="posteriors"):
        encoder_from_name(str(model), "softmax")

    items = read_manifest(small_corpus / "train.tsv")
    tok = train_tokenizer(items, enc, k=8, progress=False)
    assert tok.unit_space.startswith(f"phone-{phone_run.name}-posteriors-k8-")  # RUN names it
    tok.save(tmp_path / "tok")
    assert (tmp_path / "tok" / "encoder" / "head.safetensors").exists()
    again = Tokenizer.load(tmp_path / "tok")  # self-contained: loads from its own copy
    assert again.unit_space == tok.unit_space
    u = items[0].path
    assert torch.equal(again(u).ids, tok(u).ids)
    # shipped in float16: half the encoder's bytes, (nearly) the same units
    tok.save(tmp_path / "half", half=True)
    full = (tmp_path / "tok" / "encoder" / "model.safetensors").stat().st_size
    half = (tmp_path / "half" / "encoder" / "model.safetensors").stat().st_size
    assert half < 0.6 * full
    small = Tokenizer.load(tmp_path / "half")
    assert small.unit_space == tok.unit_space
    a, b = small(u).ids, tok(u).ids
    assert len(a) == len(b) and float((a == b).float().mean()) >= 0.9


def test_long_inputs_are_windowed_like_chunks(phone_run):
    """An input longer than a window is processed window by window: same shape, and each
    window's centre equals a pass over that window with its context alone."""
    from speechlm.features import samples_for_frames
    from speechlm.ssl.phone import CONTEXT_FRAMES, WINDOW_FRAMES, PhoneEncoder

    enc = PhoneEncoder(phone_run / "model")
    total = WINDOW_FRAMES + 2 * CONTEXT_FRAMES + 40
    wav = torch.randn(1, crop_samples(total)) * 0.1
    out = enc(wav)
    assert out.shape == (1, total, 40)
    lo, hi = 0, WINDOW_FRAMES + CONTEXT_FRAMES
    s0, s1 = samples_for_frames(lo, hi)
    first = enc._features(wav[:, s0:s1], None)[:, :WINDOW_FRAMES]
    assert torch.allclose(out[:, :WINDOW_FRAMES], first, atol=1e-5)


def _cmd(corpus, out, steps):
    return [sys.executable, "-m", "speechlm.train.encoder", "--config", str(TINY), "-q",
            *overrides(corpus, out, max_steps=steps, ckpt_interval=10, eval_interval=1000,
                       log_interval=10), "--model.dropout=0.1"]


@pytest.mark.slow
def test_reverse_grad_negates_and_scales_only_the_gradient():
    from speechlm.train.phone import adversary_scale, reverse_grad

    x = torch.randn(3, 5, requires_grad=True)
    y = reverse_grad(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.arange(5.0)).sum().backward()
    assert torch.equal(x.grad, -0.25 * torch.arange(5.0).expand(3, 5))
    ramp = [adversary_scale(0.5, s, 100) for s in (0, 10, 50, 100, 200)]
    assert ramp[0] == 0.0 and ramp == sorted(ramp) and ramp[-1] == ramp[-2]
    assert 0.49 < ramp[3] <= 0.5 and 0.22 < ramp[1] < 0.24  # (2 / (1 + e^-1) - 1) x 0.5 = 0.231


def test_speaker_adversary_trains_beside_the_encoder_and_is_not_exported(small_corpus,
                                                                         tmp_path):
    """adv_weight > 0: every crop carries its training speaker, the adversary's loss joins the
    backward pass but not the reported (model-selecting) loss, its gradient reaches the
    encoder reversed, and the exported encoder is the plain one; a run cannot resume with
    another adversary."""
    from speechlm.data.voices import base_name_of
    from speechlm.errors import SpeechLMError
    from speechlm.ssl.files import read_json
    from speechlm.train.phone import PhoneTask, reverse_grad, speaker_of

    out = tmp_path / "adv"
    args = overrides(small_corpus, out, max_steps=4, eval_interval=2, ckpt_interval=2)
    cfg = load_config(TINY, args + ["--model.adv_weight=0.5", "--model.adv_hidden=16"])
    task = PhoneTask(cfg)
    model = task.build(torch.device("cpu"), 0, 1)
    speakers = task.sets["train"].speakers()
    assert len(speakers) >= 2 and model.adv[-1].out_features == len(speakers)
    b = task.batch("train", 0, 2)
    p = plan_batch(0, 2, task.sets["train"].samples, 4, task.crop_frames, 0.8, (0.78, 1.28))
    want = [speakers.index(speaker_of(task.sets["train"].items[int(i)])) for i in p["utt"]]
    assert b.spk.tolist() == want and 0 < b.adv_scale < 0.5
    total, metrics = task.loss(model, b)
    assert 0 <= float(metrics["spk_acc"]) <= 1
    assert torch.isclose(total, metrics["loss"] + metrics["spk_ce"])
    # the encoder's gradient from the adversary's loss alone is the reversed one
    model.zero_grad()
    x = model.encoder(b.wav)[0].detach().requires_grad_(True)
    speech = (b.y != IGNORE) & (b.y != PHONE_ID["SIL"])
    spk = b.spk[:, None].expand_as(b.y)
    ce = torch.nn.functional.cross_entropy(model.adv(reverse_grad(x, 0.3))[speech], spk[speech])
    ce.backward()
    g_rev = x.grad.clone()
    x.grad = None
    torch.nn.functional.cross_entropy(model.adv(x)[speech], spk[speech]).backward()
    assert torch.allclose(g_rev, -0.3 * x.grad, atol=1e-7) and g_rev.abs().sum() > 0
    task.close()

    run = train_encoder(cfg, progress=False)
    state = load_file(run / "state.safetensors")
    assert any(k.startswith("model.adv.") for k in state)
    history = json.loads((run / "state.json").read_text())
    assert history["adv_speakers"] == speakers and history["valid_spk_acc"]
    exported = load_file(run / "model" / "model.safetensors")
    assert not any("adv" in k for k in exported)
    training = read_json(run / "model" / "config.json")["training"]
    assert training["adv_weight"] == 0.5 and training["adv_speakers"] == len(speakers)
    enc = encoder_from_name(str(run / "model"))
    assert enc(torch.randn(1, 16000)).shape[-1] == len(PHONES)
    with pytest.raises(SpeechLMError, match="speaker adversary|does not fit"):
        train_encoder(load_config(TINY, args + ["--train.max_steps=6"]), progress=False)
    voices = PhoneTask(load_config(TINY, args + ["--model.adv_weight=0.5",
                                                 "--model.adv_target=voice"]))
    voices.build(torch.device("cpu"), 0, 1)
    assert voices.speakers == sorted({base_name_of(s) for s in speakers})
    for bad in ("--model.adv_weight=-1", "--model.adv_hidden=0", "--model.adv_weight=true",
                "--model.adv_target=engine"):
        with pytest.raises(DataError, match="adv_"):
            load_config(TINY, [bad])


def test_kill_9_and_resume_matches_uninterrupted(small_corpus, tmp_path):
    """Augmentation, speed factors and dropout are functions of (seed, step) too."""
    from speechlm.train.encoder import main

    steps = 40
    assert main(_cmd(small_corpus, tmp_path / "ref", steps)[3:]) == 0
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(small_corpus, run, steps),
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (run / "state.json").exists() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((run / "state.json").read_text())["step"]
    assert 0 < killed_at < steps, "the run was not killed mid-way"
    assert main(_cmd(small_corpus, run, steps)[3:]) == 0  # resume
    a, b = load_file(tmp_path / "ref" / "state.safetensors"), load_file(run / "state.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith("model."):
            assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_warm_start_loads_an_exported_encoder_and_refuses_another_shape(phone_run, small_corpus,
                                                                       tmp_path):
    from speechlm.ssl.phone import PhoneEncoder
    from speechlm.train.phone import PhoneModel, arch_of, load_config, warm_start

    model = phone_run / "model"
    cfg = load_config(TINY, overrides(small_corpus, tmp_path / "w") + [f"--model.init={model}"])
    arch = arch_of(cfg["model"])
    net = PhoneModel(arch).eval()
    wav = torch.randn(1, 16000)
    enc = PhoneEncoder(model)
    with torch.no_grad():
        assert not torch.allclose(net(wav)[0].softmax(-1), enc(wav), atol=1e-4)
        warm_start(net, arch, model)
        assert torch.allclose(net(wav)[0].softmax(-1), enc(wav), atol=1e-5)  # the same network
        # the CTC head too
        assert torch.allclose(net(wav)[1].softmax(-1), PhoneEncoder(model, "ctc")(wav), atol=1e-5)
    # a run from it starts where the export was, and records where it came from
    short = overrides(small_corpus, tmp_path / "w", max_steps=2, eval_interval=2)
    run = train_encoder(load_config(TINY, short + [f"--model.init={model}"]), progress=False)
    assert json.loads((run / "model" / "config.json").read_text())["training"]["init"] == \
        str(model)
    wider = load_config(TINY, overrides(small_corpus, tmp_path / "x") + ["--model.dim=48"])
    with pytest.raises(ModelError, match="architecture differs"):
        warm_start(PhoneModel(arch_of(wider["model"])), arch_of(wider["model"]), model)
    with pytest.raises(ModelError, match="not a phone encoder"):
        warm_start(net, arch, tmp_path)
    # a logmel encoder may start a logmel_cmn run: the same weights, other input features
    cmn = load_config(TINY, overrides(small_corpus, tmp_path / "c")
                      + ["--model.extractor_mode=logmel_cmn"])
    cmn_net = PhoneModel(arch_of(cmn["model"])).eval()
    warm_start(cmn_net, arch_of(cmn["model"]), model)
    for k, v in net.state_dict().items():
        assert torch.equal(cmn_net.state_dict()[k], v), k
    with torch.no_grad():  # ... and sees mean-normalised input
        assert not torch.allclose(cmn_net(wav)[0], net(wav)[0], atol=1e-3)


def test_ctc_head_is_exported_and_gives_phone_rate_units(phone_run, small_corpus, tmp_path):
    """The exported directory holds the CTC head; ``--layer ctc`` makes a tokenizer whose frame
    units are the CTC head's greedy phones held until the next one, with nothing fitted."""
    from speechlm.audio import load_audio
    from speechlm.cli import main as cli
    from speechlm.data.manifest import read_manifest
    from speechlm.quantizer import fill_blanks
    from speechlm.ssl.phone import CTC_FILE, PhoneEncoder
    from speechlm.tokenizer import Tokenizer
    from speechlm.units import dedup

    model = phone_run / "model"
    assert (model / CTC_FILE).exists()
    enc = PhoneEncoder(model, "ctc")
    assert enc.dim == 41 and enc.blank == 40
    wav = torch.randn(1, 16000)
    post = enc(wav)
    assert post.shape == (1, num_frames(16000), 41)
    assert torch.allclose(post.sum(-1), torch.ones(1, num_frames(16000)), atol=1e-4)

    assert cli(["train", "tokenizer", "--features", str(model), "--layer", "ctc",
                "--out", str(tmp_path / "ctc")]) == 0
    tok = Tokenizer.load(tmp_path / "ctc")
    assert tok.n_units == 41 and "-ctc-k41-" in tok.unit_space
    u = read_manifest(small_corpus / "train.tsv")[0].path
    ids = tok(u).ids
    greedy = enc(load_audio(u, 16000)[None])[0].argmax(-1)
    assert torch.equal(ids, fill_blanks(greedy, 40))
    if (greedy != 40).any():
        assert not (ids == 40).any()  # blanks are filled
        # the deduplicated units are the greedy CTC string (repeats and blanks removed)
        want = [int(g) for k, g in enumerate(greedy) if g != 40 and (k == 0 or g != greedy[k - 1])]
        merged = [v for k, v in enumerate(want) if k == 0 or v != want[k - 1]]
        assert dedup(ids)[0].tolist() == merged
    w = load_audio(u, 16000)  # what eval tokenizer quantizes: the same filled units
    assert torch.equal(tok.quantize(tok.features(w[None])[0]), tok.encode(w[None])[0])
    # batches with padding give each item the units of its own pass
    lengths = torch.tensor([16000, 12000])
    batch = tok.encode(torch.randn(2, 16000) * 0.1, lengths)
    assert (batch[1, num_frames(12000):] == -1).all()
    with pytest.raises(ModelError, match="smoothing"):
        tok.with_smoothing(1.0)
    # the unit space names the network: other weights, another space; a float16 copy, the same
    tok.save(tmp_path / "ctc16", half=True)
    assert Tokenizer.load(tmp_path / "ctc16").unit_space == tok.unit_space
    other = PhoneEncoder(model, "ctc")
    with torch.no_grad():
        other.ctc.bias[0] += 1.0
    assert Tokenizer(other, tok.quantizer, tok.training).unit_space != tok.unit_space


def test_ctc_output_needs_a_ctc_head(phone_run, tmp_path):
    import shutil

    from speechlm.ssl.phone import CTC_FILE, CTC_KEY, PhoneEncoder

    old = tmp_path / "old"
    shutil.copytree(phone_run / "model", old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg[CTC_KEY]
    (old / "config.json").write_text(json.dumps(cfg))
    (old / CTC_FILE).unlink()
    PhoneEncoder(old)  # posteriors still work
    with pytest.raises(ModelError, match="CTC head"):
        PhoneEncoder(old, "ctc")


def test_export_state_writes_the_last_checkpoint_with_its_ctc_head(phone_run, tmp_path):
    from speechlm.errors import SpeechLMError
    from speechlm.ssl.phone import PhoneEncoder
    from speechlm.train.phone import PhoneModel, arch_of, export_state, load_config

    out = export_state(phone_run, tmp_path / "enc")
    enc = PhoneEncoder(out, "ctc")
    cfg = load_config(phone_run / "run.toml")
    net = PhoneModel(arch_of(cfg["model"])).eval()
    state = load_file(phone_run / "state.safetensors")
    net.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    wav = torch.randn(1, 16000)
    with torch.no_grad():
        assert torch.allclose(net(wav)[1].softmax(-1), enc(wav), atol=1e-5)
    with pytest.raises(SpeechLMError, match="not a phone encoder run"):
        export_state(tmp_path, tmp_path / "x")


def test_eval_tokenizer_reports_the_phone_error_rate_of_ctc_units(phone_run, small_corpus):
    from speechlm.eval.tokenizer import evaluate_tokenizer, markdown_table
    from speechlm.ssl.phone import PhoneEncoder
    from speechlm.train.tokenizer import ctc_tokenizer

    tok = ctc_tokenizer(PhoneEncoder(phone_run / "model", "ctc"))
    r = evaluate_tokenizer(tok, small_corpus / "test.tsv", max_utterances=4, progress=False,
                           ued_utterances=0)
    assert r["n_units"] == 41 and 0 <= r["unit_phone_error_rate"] <= 2
    rows = r["unit_phone_errors_by_utterance"]  # [name, voice, edits, reference phones]
    assert rows and len({row[0] for row in rows}) == len(rows) <= 4
    assert r["unit_phone_error_rate"] == round(sum(x[2] for x in rows) / sum(x[3] for x in rows),
                                               4)
    assert "phone error rate (units, CTC)" in markdown_table([r])
    # the reference string's probability under the head, per temperature (its calibration)
    from speechlm.eval.tokenizer import CTC_TEMPERATURES, _reference_units

    calib = r["ctc_reference_logprob"]
    by_t = calib["per_unit_by_temperature"]
    assert list(by_t) == [f"{t:g}" for t in CTC_TEMPERATURES]
    assert all(v <= 0 for v in by_t.values()) and calib["reference_units"] > 0
    assert by_t[f"{calib['best_temperature']:g}"] == max(by_t.values())
    assert "reference phone string" in markdown_table([r])
    names = ["SIL", "AA", "B"]
    assert _reference_units([None, "SIL", "SIL", "B", "B", None, "B", "AA", "SIL"], names) == \
        [0, 2, 1, 0]
    assert _reference_units(["SIL", "ZH"], names) == []  # a phone with no unit: no string
    plain = evaluate_tokenizer("phone-k100", small_corpus / "test.tsv", max_utterances=4,
                               progress=False, ued_utterances=0)
    assert "unit_phone_error_rate" not in plain  # k-means units are not phones
    assert "ctc_reference_logprob" not in plain
    assert "unit_phone_errors_by_utterance" not in plain


def test_to_device_keeps_a_phone_batch_a_phone_batch():
    """The GPU path of the loop moves each tensor of a NamedTuple batch and keeps its type
    (the "meta" device stands in for a GPU here)."""
    from speechlm.train.loop import to_device
    from speechlm.train.phone import PhoneBatch

    b = PhoneBatch(torch.zeros(2, 400), torch.zeros(2, 3, dtype=torch.long), None,
                   torch.zeros(2, dtype=torch.long), 0.25, torch.tensor([True, False]))
    moved = to_device(b, torch.device("meta"))
    assert isinstance(moved, PhoneBatch) and moved.adv_scale == 0.25 and moved.mask is None
    assert moved.wav.device.type == "meta" and moved.frame_loss.device.type == "meta"


def test_forced_ctc_only_crops_train_their_phone_sequence_not_their_frames(small_corpus,
                                                                           tmp_path):
    """data.forced_loss = "ctc": a crop of a force-aligned utterance gets no frame loss (its
    boundaries are guesses) but keeps CTC over its phone sequence; engine-labelled crops train
    both, and validation is untouched."""
    from speechlm.data.align import forced_phn_path
    from speechlm.data.manifest import read_manifest
    from speechlm.train.phone import PhoneTask

    forced = tmp_path / "align"
    bare = [u for u in read_manifest(small_corpus / "train.tsv") if not u.phn_path.exists()]
    assert bare
    for u in bare:  # stand-in labels: a silence, one vowel, a silence
        n = u.num_samples
        path = forced_phn_path(forced, u)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"0 {n // 4} SIL\n{n // 4} {3 * n // 4} AA\n{3 * n // 4} {n} SIL\n")
    (forced / "align.json").write_text("{}")
    over = overrides(small_corpus, tmp_path / "r") + [f"--data.forced_alignments={forced}",
                                                      "--data.forced_loss=ctc"]
    task = PhoneTask(load_config(TINY, over))
    model = task.build(torch.device("cpu"), 0, 1).eval()
    s = task.sets["train"]
    assert s.forced == len(bare) and s.is_forced.sum() == len(bare)
    assert task.batch("valid", 1, 0).frame_loss is None
    mixed = None
    for step in range(40):
        b = task.batch("train", 0, step)
        p = plan_batch(0, step, s.samples, 4, task.crop_frames, 0.8, (0.78, 1.28))
        assert torch.equal(b.frame_loss, torch.from_numpy(~s.is_forced[p["utt"]]))
        if b.frame_loss.any() and not b.frame_loss.all():
            mixed = b
            break
    assert mixed is not None
    with torch.no_grad():
        _, both = task.loss(model, mixed._replace(frame_loss=None))
        _, ctc_only = task.loss(model, mixed)
        _, none = task.loss(model, mixed._replace(frame_loss=torch.zeros(4, dtype=torch.bool)))
    assert torch.equal(ctc_only["ctc"], both["ctc"]) and torch.equal(none["ctc"], both["ctc"])
    assert not torch.equal(ctc_only["ce"], both["ce"])
    assert float(none["ce"]) == 0.0 and float(none["loss"]) == pytest.approx(
        float(task.m["ctc_weight"] * both["ctc"]))
    with pytest.raises(DataError, match="forced_loss"):
        load_config(TINY, ["--data.forced_loss=boundaries"])
    with pytest.raises(DataError, match="ctc_weight"):
        load_config(TINY, over + ["--model.ctc_weight=0"])


def test_paired_plans_read_one_stretch_twice_and_match_frames():
    """consistency_weight > 0: rows 2i and 2i + 1 are two views of the same stretch (utterance
    and start shared, speed factors apart), every read stays inside its utterance, and
    pair_frames matches frames that read the same source sample (the identity at equal
    speeds; none past the utterance's end)."""
    from speechlm.train.phone import pair_frames

    samples = np.array([16000, 48000, 9000, 64000])
    a = plan_batch(3, 7, samples, 8, 100, 0.8, (0.78, 1.28), pairs=True)
    b = plan_batch(3, 7, samples, 8, 100, 0.8, (0.78, 1.28), pairs=True)
    for k in ("utt", "num", "start", "need"):
        assert np.array_equal(a[k], b[k])
    assert np.array_equal(a["utt"][0::2], a["utt"][1::2])
    assert np.array_equal(a["start"][0::2], a["start"][1::2])
    assert not np.array_equal(a["num"][0::2], a["num"][1::2])
    assert (a["start"] >= 0).all() and (a["start"] + a["need"] <= samples[a["utt"]]).all()
    with pytest.raises(ValueError, match="even"):
        plan_batch(3, 7, samples, 7, 100, 0.8, (0.78, 1.28), pairs=True)

    long = np.array([10 ** 6])
    same = pair_frames(np.array([100, 100]), 100, 50, long)
    assert np.array_equal(same[0], np.arange(50))
    # the second view twice as fast (num 200): the first view's frame j reads source sample
    # c_j, the second view's frame k reads 2 c_k, so k follows j at half its index
    half = pair_frames(np.array([100, 200]), 100, 50, long)[0]
    centres = np.arange(50) * HOP_SIZE + FRAME_SIZE // 2
    for j in (10, 20, 40):
        k = half[j]
        assert abs(2 * centres[k] - centres[j]) <= HOP_SIZE * 2
    slow = pair_frames(np.array([200, 100]), 100, 50, long)[0]
    assert (slow[30:] == -1).all() and (slow[:20] >= 0).all()  # past the second view's end
    short = pair_frames(np.array([100, 100]), 100, 50, np.array([10 * HOP_SIZE]))[0]
    assert (short[:9] >= 0).all() and (short[12:] == -1).all()  # the padding matches nothing


def test_consistency_loss_is_zero_for_equal_views_and_pulls_each_toward_the_other():
    from speechlm.train.phone import consistency_loss

    torch.manual_seed(0)
    one = torch.randn(1, 6, 5)
    logits = torch.cat([one, one])  # a pair of identical views
    ident = torch.arange(6)[None]
    assert float(consistency_loss(logits, ident)) == pytest.approx(0.0, abs=1e-7)
    assert float(consistency_loss(logits, torch.full((1, 6), -1))) == 0.0
    x = torch.randn(2, 6, 5, requires_grad=True)
    loss = consistency_loss(x, ident)
    assert float(loss.detach()) > 0
    loss.backward()
    assert x.grad[0].abs().sum() > 0 and x.grad[1].abs().sum() > 0
    # shifted matching: frame j of the first view against frame j + 1 of the second
    shifted = torch.cat([one, torch.cat([one[:, :1], one[:, :-1]], 1)])
    match = torch.tensor([[1, 2, 3, 4, 5, -1]])
    assert float(consistency_loss(shifted, match)) == pytest.approx(0.0, abs=1e-6)


def test_consistency_training_pairs_train_batches_only_and_records_its_weight(small_corpus,
                                                                              tmp_path):
    """A run with model.consistency_weight trains paired views (the term joins the backward
    pass, not the reported loss), validation stays unpaired, the export records the weight,
    and the run refuses to resume under another weight."""
    from speechlm.errors import SpeechLMError
    from speechlm.ssl.files import read_json
    from speechlm.train.phone import PhoneTask

    args = overrides(small_corpus, tmp_path / "cons", max_steps=4, eval_interval=2,
                     ckpt_interval=2)
    cfg = load_config(TINY, args + ["--model.consistency_weight=2"])
    task = PhoneTask(cfg)
    model = task.build(torch.device("cpu"), 0, 1)
    b = task.batch("train", 0, 1)
    assert b.pairs is not None and b.pairs.shape == (b.wav.shape[0] // 2, b.y.shape[1])
    assert (b.pairs >= 0).float().mean() > 0.5
    # matched frames of two views carry the same phone label (up to a boundary's frame)
    ok = b.pairs >= 0
    second = torch.gather(b.y[1::2], 1, b.pairs.clamp(min=0))
    assert (b.y[0::2][ok] == second[ok]).float().mean() > 0.85
    assert task.batch("valid", 1, 0).pairs is None
    total, metrics = task.loss(model, b)
    assert float(metrics["cons"].detach()) > 0
    assert torch.isclose(total, metrics["loss"] + 2 * metrics["cons"])
    task.close()
    run = train_encoder(cfg, progress=False)
    assert read_json(run / "model" / "config.json")["training"]["consistency_weight"] == 2.0
    with pytest.raises(SpeechLMError, match="consistency_weight"):
        train_encoder(load_config(TINY, args + ["--train.max_steps=6"]), progress=False)
    for bad in ("--model.consistency_weight=-1", "--model.consistency_weight=true"):
        with pytest.raises(DataError, match="consistency_weight"):
            load_config(TINY, [bad])
    with pytest.raises(DataError, match="even"):
        load_config(TINY, ["--model.consistency_weight=1", "--train.batch_size=3"])


def test_band_limit_low_passes_every_crop(small_corpus, tmp_path):
    """data.band_limit: crops (training and validation) lose everything above the cut-off,
    after augmentation; bad values are refused."""
    from speechlm.train.phone import PhoneTask

    over = overrides(small_corpus, tmp_path / "b")
    plain = PhoneTask(load_config(TINY, over))
    plain.build(torch.device("cpu"), 0, 1)
    lim = PhoneTask(load_config(TINY, over + ["--data.band_limit=4000"]))
    lim.build(torch.device("cpu"), 0, 1)
    for split in ("train", "valid"):
        a, b = plain.batch(split, 0, 3).wav, lim.batch(split, 0, 3).wav
        spec_a, spec_b = (torch.fft.rfft(x, dim=-1).abs().square() for x in (a, b))
        f = torch.fft.rfftfreq(a.shape[-1], 1 / 16000)
        assert spec_b[:, f > 4000].sum() < 1e-6 * spec_b.sum()
        assert spec_a[:, f > 4000].sum() > 1e-3 * spec_a.sum()
        low = f < 3800
        assert torch.allclose(spec_a[:, low], spec_b[:, low], rtol=1e-3, atol=1e-3)
    for bad in ("--data.band_limit=500", "--data.band_limit=8000", "--data.band_limit=true"):
        with pytest.raises(DataError, match="band_limit"):
            load_config(TINY, [bad])


def test_voice_balance_draws_the_training_crops_by_voice(small_corpus, tmp_path):
    """data.voice_balance: the task draws training utterances with voice_weights of their base
    voices (validation stays uniform); 0 keeps the draws of before; bad values are refused."""
    from speechlm.train.phone import PhoneTask, speaker_of

    over = overrides(small_corpus, tmp_path / "v")
    plain = PhoneTask(load_config(TINY, over))
    plain.build(torch.device("cpu"), 0, 1)
    assert plain.weights is None
    bal = PhoneTask(load_config(TINY, over + ["--data.voice_balance=1"]))
    bal.build(torch.device("cpu"), 0, 1)
    items = bal.sets["train"].items
    voices = [speaker_of(u, "voice") for u in items]
    assert np.allclose(bal.weights, voice_weights(voices, 1.0))
    assert np.isclose(bal.weights.sum(), 1.0)
    import speechlm.train.phone as phone

    seen = []

    def spy(*args, **kw):
        seen.append(kw.get("weights"))
        return plan(*args, **kw)

    plan, phone.plan_batch = phone.plan_batch, spy
    try:
        for split in ("train", "valid"):
            assert bal.batch(split, 0, 3).wav.shape == plain.batch(split, 0, 3).wav.shape
    finally:
        phone.plan_batch = plan
    assert seen[0] is bal.weights and seen[1] is None  # training crops by voice
    assert seen[2] is None and seen[3] is None  # validation, and the run without it: uniform
    # a run is resumed only with the draws it started with
    from speechlm.errors import SpeechLMError

    assert bal.history()["voice_balance"] == 1.0 and "voice_balance" not in plain.history()
    bal.check_resume(bal.history())
    plain.check_resume(plain.history())
    for task, other in ((bal, plain), (plain, bal)):
        with pytest.raises(SpeechLMError, match="voice_balance"):
            task.check_resume(other.history())
    for bad in ("--data.voice_balance=-0.5", "--data.voice_balance=2", "--data.voice_balance=true"):
        with pytest.raises(DataError, match="voice_balance"):
            load_config(TINY, [bad])
