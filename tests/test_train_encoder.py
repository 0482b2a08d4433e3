"""HuBERT-style encoder training: aligned targets, the loss falls, the export plugs into the SSL
feature path (iteration 2 included), a killed run resumes exactly, 2 processes match 1."""

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
from conftest import run_torchrun
from safetensors.torch import load_file

from speechlm.features import num_frames
from speechlm.train.encoder import load_config, train_encoder
from speechlm.train.encoder_data import (
    crop_samples,
    draw_crops,
    load_crops,
    open_targets,
    prepare_targets,
    usable,
)
from speechlm.train.hubert import HubertPretrainer, build_arch, span_mask

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "encoder" / "tiny.toml"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def units_dir(small_corpus, tmp_path_factory):
    d = tmp_path_factory.mktemp("enc-units")
    prepare_targets("mfcc-k100", small_corpus, d, progress=False)
    return d


def overrides(small_corpus, units_dir, out, **train):
    ov = [f"--data.corpus={small_corpus}", f"--data.units_dir={units_dir}",
          f"--train.out={out}", "--train.threads=1"]
    return ov + [f"--train.{k}={v}" for k, v in train.items()]


def weights(run: Path) -> dict:
    return {k: v for k, v in load_file(run / "state.safetensors").items()
            if k.startswith("model.")}


@pytest.fixture(scope="module")
def tiny_run(small_corpus, units_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc-run") / "run"
    torch.set_num_threads(1)
    return train_encoder(load_config(TINY, overrides(small_corpus, units_dir, out)),
                         progress=False)


# --------------------------------------------------------------------------- pieces


def test_span_mask():
    rng = np.random.default_rng(0)
    m = span_mask(rng, 64, 100, 0.8, 10)
    assert m.shape == (64, 100) and m.dtype == bool
    assert m.any(axis=1).all()  # every row has at least one span
    # 8 span starts of 10 frames (overlapping) cover ~55% of the frames on average
    assert 0.4 < m.mean() < 0.7
    runs = np.diff(np.concatenate([[0], m[0].astype(int), [0]]))
    assert (np.flatnonzero(runs == -1) - np.flatnonzero(runs == 1)).min() >= 10
    again = span_mask(np.random.default_rng(0), 64, 100, 0.8, 10)
    assert np.array_equal(m, again)
    assert span_mask(rng, 2, 3, 0.8, 10).all()  # spans longer than the crop cover it


def test_crop_length_gives_as_many_encoder_frames():
    cfg = load_config(TINY)
    model = HubertPretrainer(build_arch(cfg["model"]), n_classes=10)
    for n in (1, 2, 7, 50, 51):
        samples = crop_samples(n)
        assert num_frames(samples) == n and num_frames(samples + 319) == n
        assert num_frames(samples - 1) == n - 1
        x, _ = model.encoder.feature_extractor(torch.zeros(2, samples), None)
        assert x.shape[:2] == (2, n)
        logits, _ = model(torch.randn(2, samples), torch.zeros(2, n, dtype=torch.bool))
        assert logits.shape == (2, n, 10)


def test_bad_geometry_is_refused():
    from speechlm.errors import DataError

    with pytest.raises(DataError, match="receptive field 10 and stride 5"):
        load_config(TINY, ["--model.conv_layers=[[16, 10, 5]]"])


def test_targets_are_the_units_of_the_crop(small_corpus, units_dir):
    """Units of samples [320 s, 320 s + L) are units[s : s + n] of the whole file: tokenizing
    the crop alone gives the same units away from its edges (MFCC deltas see 4 frames)."""
    from speechlm.tokenizer import Tokenizer

    tok = Tokenizer.load("mfcc-k100")
    targets = open_targets(units_dir, "train", small_corpus)
    assert targets.meta["unit_space"] == tok.unit_space and not targets.meta["dedup"]
    assert len(targets.items) == len(targets.frames) == 48
    pool = usable(targets, 1.0)
    same = shifted = total = 0
    for step in range(3):
        utt, start, n = draw_crops(0, step, pool, targets.frames, 4, 100)
        wav, y = load_crops(targets, utt, start, n)
        assert wav.shape == (4, crop_samples(n)) and y.shape == (4, n) and 50 < n <= 100
        assert num_frames(wav.shape[1]) == y.shape[1]
        ids = tok.encode(wav)
        inner = slice(4, n - 4)
        same += int((ids[:, inner] == y[:, inner]).sum())
        shifted += int((ids[:, 5 : n - 3] == y[:, inner]).sum())
        total += y[:, inner].numel()
    assert same == total
    assert shifted < 0.9 * total  # a one-frame misalignment would show
    # and the crops are where draw_crops says: deterministic in (seed, step)
    a = draw_crops(0, 7, pool, targets.frames, 4, 100)
    b = draw_crops(0, 7, pool, targets.frames, 4, 100)
    assert all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2])) and a[2] == b[2]


def test_dedup_units_are_refused(small_corpus, tmp_path):
    from speechlm.data.shards import dump_units
    from speechlm.errors import DataError
    from speechlm.tokenizer import Tokenizer

    dump_units(Tokenizer.load(), small_corpus, tmp_path, splits=("valid",), progress=False)
    with pytest.raises(DataError, match="deduplicated"):
        open_targets(tmp_path, "valid", small_corpus)


# --------------------------------------------------------------------------- training


def test_loss_falls(tiny_run):
    hist = json.loads((tiny_run / "state.json").read_text())
    assert hist["step"] == 150
    valid = [v for _, v in hist["valid_loss"]]
    assert valid[-1] < valid[0] - 0.2, valid
    train = [v for _, v in hist["train_loss"]]
    assert np.mean(train[-3:]) < np.mean(train[:3]) - 0.2, train
    log = [json.loads(line) for line in (tiny_run / "log.jsonl").read_text().splitlines()]
    assert {"loss", "acc", "frames_per_s", "lr", "grad_norm"} <= set(log[0])


def test_export_loads_as_ssl_features(tiny_run, small_corpus):
    from speechlm.audio import load_audio
    from speechlm.data.manifest import read_manifest
    from speechlm.features import SSLEncoder, build_encoder

    cfg = json.loads((tiny_run / "model" / "config.json").read_text())
    hist = json.loads((tiny_run / "state.json").read_text())
    assert cfg["kind"] == "ssl_encoder" and cfg["normalize_waveform"] is False
    assert cfg["training"]["steps"] == hist["best_valid"][0]
    assert cfg["training"]["target_unit_space"].startswith("mfcc-k100-")
    enc = SSLEncoder(tiny_run / "model", layer=2)
    assert (enc.dim, enc.info.num_layers, enc.info.source_format) == (32, 2, "speechlm")
    wav = load_audio(read_manifest(small_corpus / "valid.tsv")[0].path)
    feats = enc(wav[None])
    assert feats.shape == (1, num_frames(wav.numel()), 32) and torch.isfinite(feats).all()
    again = build_encoder(enc.config())(wav[None])
    assert torch.equal(feats, again)
    # the exported weights are the encoder's part of the training state at the best step
    if hist["best_valid"][0] == hist["step"]:
        state = weights(tiny_run)
        exported = load_file(tiny_run / "model" / "model.safetensors")
        for k, v in exported.items():
            assert torch.equal(v, state[f"model.encoder.{k}"]), k


def test_iteration_two_trains_on_encoder_units(tiny_run, small_corpus, tmp_path, capsys):
    """Iteration 2: a tokenizer on a layer of the exported encoder is just another target."""
    from speechlm.cli import main
    from speechlm.tokenizer import Tokenizer

    code = main(["train", "tokenizer", "-q", "--corpus", str(small_corpus), "--features",
                 str(tiny_run / "model"), "--layer", "1", "--k", "8", "--out",
                 str(tmp_path / "enc1-k8")])
    assert code == 0
    tok = Tokenizer.load(tmp_path / "enc1-k8")
    assert json.loads(capsys.readouterr().out)["unit_space"] == tok.unit_space
    assert tok.unit_space.startswith("ssl-model-l1-k8-")
    cfg = load_config(TINY, overrides(small_corpus, tmp_path / "units2", tmp_path / "run2",
                                      max_steps=4, eval_interval=4, ckpt_interval=4))
    cfg["data"]["tokenizer"] = str(tmp_path / "enc1-k8")
    out = train_encoder(cfg, progress=False)
    meta = json.loads((tmp_path / "units2" / "train.json").read_text())
    assert meta["unit_space"] == tok.unit_space and meta["dedup"] is False
    training = json.loads((out / "model" / "config.json").read_text())["training"]
    assert training["target_unit_space"] == tok.unit_space and training["n_classes"] == 8
    # a units_dir made from other targets is refused
    from speechlm.errors import DataError

    cfg["data"]["tokenizer"] = "mfcc-k100"
    with pytest.raises(DataError, match="another tokenizer"):
        train_encoder(cfg, progress=False)


def test_layer_pnmi_picks_a_layer(tiny_run, small_corpus, capsys):
    from speechlm.eval.encoder_layers import layer_pnmi, main

    report = layer_pnmi(tiny_run / "model", small_corpus, k=8, fit_utterances=20,
                        eval_utterances=8, progress=False)
    assert [r["layer"] for r in report["layers"]] == [0, 1, 2]
    assert all(0.0 <= r["pnmi"] <= 1.0 for r in report["layers"])
    assert report["best_layer"] == max(report["layers"], key=lambda r: r["pnmi"])["layer"]
    assert main(["--model", str(tiny_run / "model"), "--corpus", str(small_corpus), "--k", "8",
                 "--fit-utterances", "20", "--eval-utterances", "8", "--best", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(report["best_layer"])


def _cmd(small_corpus, units_dir, out, steps):
    return [sys.executable, "-m", "speechlm.train.encoder", "--config", str(TINY), "-q",
            *overrides(small_corpus, units_dir, out, max_steps=steps, ckpt_interval=10,
                       eval_interval=1000, log_interval=10),
            "--model.dropout=0.1", "--model.layer_drop=0.2"]


@pytest.mark.slow
def test_kill_9_and_resume_matches_uninterrupted(small_corpus, units_dir, tmp_path):
    """With dropout and layer drop on: their randomness is a function of (seed, step) too."""
    steps = 60
    cmd = _cmd(small_corpus, units_dir, tmp_path / "ref", steps)
    from speechlm.train.encoder import main

    assert main(cmd[3:]) == 0  # uninterrupted, in this process
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cmd(small_corpus, units_dir, run, steps), env=env)
    deadline = time.time() + 60
    while not (run / "state.json").exists() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((run / "state.json").read_text())["step"]
    assert 0 < killed_at < steps, "the run was not killed mid-way"
    assert main(_cmd(small_corpus, units_dir, run, steps)[3:]) == 0  # resume
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == steps and state["train_loss"][0][0] == 10
    a, b = weights(tmp_path / "ref"), weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


@pytest.mark.slow
def test_two_processes_match_one(small_corpus, units_dir, tmp_path):
    from speechlm.train.encoder import main

    ov = overrides(small_corpus, units_dir, tmp_path / "one", max_steps=10, ckpt_interval=10,
                   eval_interval=10)
    assert main(["--config", str(TINY), "-q", *ov]) == 0
    ov = overrides(small_corpus, units_dir, tmp_path / "two", max_steps=10, ckpt_interval=10,
                   eval_interval=10)
    run_torchrun("speechlm.train.encoder", ["--config", str(TINY), "-q", *ov], tmp_path / "two")
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for k in a:  # most agree to 1e-6; a k_proj bias has a zero gradient up to rounding, which
        # Adam scales up to steps of ~lr, so it differs by ~1e-5
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-3), k
    va = json.loads((tmp_path / "one" / "state.json").read_text())
    vb = json.loads((tmp_path / "two" / "state.json").read_text())
    assert va["valid_loss"][-1][1] == pytest.approx(vb["valid_loss"][-1][1], abs=1e-4)
    assert va["train_loss"][-1][1] == pytest.approx(vb["train_loss"][-1][1], abs=1e-4)


# --------------------------------------------------------------------------- CLI


def test_cli_train_encoder(small_corpus, units_dir, tmp_path, capsys):
    from speechlm.cli import main

    out = tmp_path / "run"
    code = main(["train", "encoder", "--config", str(TINY), "-q",
                 *overrides(small_corpus, units_dir, out, max_steps=3, eval_interval=3)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"run": str(out), "model": str(out / "model")}
    assert (out / "model" / "config.json").exists() and (out / "run.toml").exists()
    # resuming that run with another model is a user error, not a traceback
    code = main(["train", "encoder", "--config", str(TINY), "-q", "--model.ffn=128",
                 *overrides(small_corpus, units_dir, out, max_steps=6, eval_interval=3)])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit this recipe's model" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--train.nope=1"], "unknown config keys: train.nope"),
    (["--model.width=8"], "unknown config keys: model.width"),
    (["--model.heads=3"], "model.dim 32 must divide by model.heads 3"),
    (["--model.conv_layers=[[16, 10, 5]]"], "receptive field 10 and stride 5 samples"),
    (["--model.mask_prob=0"], "model.mask_prob must lie in (0, 1]"),
    (["--data.corpus=/nonexistent"], "manifest not found"),
])
def test_cli_bad_config_exits_2_with_one_line(args, message, tmp_path, capsys):
    from speechlm.cli import main

    code = main(["train", "encoder", "--config", str(TINY), "-q",
                 f"--train.out={tmp_path / 'run'}", f"--data.units_dir={tmp_path / 'u'}", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_missing_config(tmp_path, capsys):
    from speechlm.train.encoder import main

    assert main(["--config", str(tmp_path / "none.toml")]) == 2
    assert "config not found" in capsys.readouterr().err


def test_logmel_front_end_trains_and_exports(small_corpus, units_dir, tmp_path):
    """``model.extractor_mode = "logmel"`` (configs/encoder/cpu-mel.toml's front end): the loss
    falls, no CNN weights exist, and the export is a feature encoder on HuBERT's frame grid."""
    from speechlm.audio import load_audio
    from speechlm.data.manifest import read_manifest
    from speechlm.features import SSLEncoder

    ov = overrides(small_corpus, units_dir, tmp_path / "run", max_steps=150, eval_interval=50,
                   ckpt_interval=50)
    cfg = load_config(TINY, [*ov, "--model.extractor_mode=logmel",
                             "--model.conv_layers=[[16, 400, 320]]", "--model.feature_pen=0"])
    run = train_encoder(cfg, progress=False)
    hist = json.loads((run / "state.json").read_text())
    valid = [v for _, v in hist["valid_loss"]]
    assert valid[-1] < valid[0] - 0.2, valid
    assert not any("feature_extractor" in k for k in weights(run))
    assert json.loads((run / "model" / "config.json").read_text())["arch"]["extractor_mode"] \
        == "logmel"
    enc = SSLEncoder(run / "model", layer=1)
    wav = load_audio(read_manifest(small_corpus / "valid.tsv")[0].path)
    feats = enc(wav[None])
    assert feats.shape == (1, num_frames(wav.numel()), 32) and torch.isfinite(feats).all()
