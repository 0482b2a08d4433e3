"""LM training: the loss falls, a killed run resumes exactly, and 2 processes match 1."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_torchrun
from safetensors.torch import load_file

from speechlm.train.lm import load_config, train_lm

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "lm" / "tiny.toml"


@pytest.fixture(scope="module")
def units_dir(small_corpus, tmp_path_factory):
    from speechlm.data.shards import dump_units
    from speechlm.tokenizer import Tokenizer

    d = tmp_path_factory.mktemp("units")
    dump_units(Tokenizer.load("mfcc-k100"), small_corpus, d, progress=False)  # tiny.toml's
    return d


def overrides(small_corpus, units_dir, out, **train):
    ov = [f"--data.corpus={small_corpus}", f"--data.units_dir={units_dir}",
          f"--train.out={out}"]
    ov += [f"--train.{k}={v}" for k, v in train.items()]
    return ov


def weights(run: Path) -> dict:
    return {k: v for k, v in load_file(run / "state.safetensors").items()
            if k.startswith("model.")}


def test_loss_falls_and_model_exports(small_corpus, units_dir, tmp_path):
    cfg = load_config(TINY, overrides(small_corpus, units_dir, tmp_path / "run",
                                      max_steps=60, eval_interval=20))
    out = train_lm(cfg, progress=False)
    import json

    hist = json.loads((out / "state.json").read_text())
    assert hist["step"] == 60
    assert hist["valid_loss"][-1][1] < hist["valid_loss"][0][1] - 0.1
    assert hist["train_loss"][-1][1] < hist["train_loss"][0][1]
    from speechlm.lm import LanguageModel

    lm = LanguageModel.load(out / "model")
    model, meta = lm.model, lm.config
    assert meta["unit_space"].startswith("mfcc-k100-") and model.cfg.dedup
    assert meta["training"]["steps"] == hist["best_valid"][0]


def _cmd(small_corpus, units_dir, out, steps):
    return [sys.executable, "-m", "speechlm.train.lm", "--config", str(TINY), "-q",
            *overrides(small_corpus, units_dir, out, max_steps=steps, ckpt_interval=10,
                       eval_interval=500, log_interval=10)]


def test_kill_9_and_resume_matches_uninterrupted(small_corpus, units_dir, tmp_path):
    steps = 800
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    subprocess.run(_cmd(small_corpus, units_dir, ref, steps), check=True, env=env)

    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(small_corpus, units_dir, run, steps), env=env)
    deadline = time.time() + 120
    while not (run / "state.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    import json

    killed_at = json.loads((run / "state.json").read_text())["step"]
    assert 0 < killed_at < steps, "the run was not killed mid-way"
    subprocess.run(_cmd(small_corpus, units_dir, run, steps), check=True, env=env)
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == steps
    assert state["train_loss"][0][0] == 10  # history from before the kill carried over
    a, b = weights(ref), weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_two_processes_match_one(small_corpus, units_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ov = overrides(small_corpus, units_dir, tmp_path / "one", max_steps=20, ckpt_interval=20,
                   eval_interval=20)
    subprocess.run([sys.executable, "-m", "speechlm.train.lm", "--config", str(TINY), "-q",
                    *ov], check=True, env=env)
    ov = overrides(small_corpus, units_dir, tmp_path / "two", max_steps=20, ckpt_interval=20,
                   eval_interval=20)
    run_torchrun("speechlm.train.lm", ["--config", str(TINY), "-q", *ov], tmp_path / "two")
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-3), k
    import json

    la = json.loads((tmp_path / "one" / "state.json").read_text())["valid_loss"][-1][1]
    lb = json.loads((tmp_path / "two" / "state.json").read_text())["valid_loss"][-1][1]
    assert la == pytest.approx(lb, abs=1e-4)


def test_bad_config(tmp_path):
    from speechlm.errors import DataError

    with pytest.raises(DataError, match="unknown config keys: train.nope"):
        load_config(TINY, ["--train.nope=1"])
    with pytest.raises(DataError, match="unknown config keys: model.width"):
        load_config(TINY, ["--model.width=1"])
    with pytest.raises(DataError, match="expected --section.key=value"):
        load_config(TINY, ["--max_steps=1"])
    with pytest.raises(DataError, match="config not found"):
        load_config(tmp_path / "none.toml")


def test_torchrun_failure_shows_why(small_corpus, units_dir, tmp_path):
    """A rank's error reaches the test report (not a bare exit status), and is not retried."""
    ov = overrides(small_corpus, units_dir, tmp_path / "bad", batch_size=3)
    with pytest.raises(AssertionError, match=r"(?s)attempt 1\).*batch_size 3 must divide"):
        run_torchrun("speechlm.train.lm", ["--config", str(TINY), "-q", *ov], tmp_path / "bad")


def test_shards_of_other_units_are_refused(small_corpus, units_dir, tmp_path):
    """Shards made by another tokenizer than data.tokenizer (a bundled name that now holds other
    units, after a default switch) are refused before training, naming both unit spaces; the
    tokenizer that made them trains."""
    from speechlm.errors import DataError

    ov = overrides(small_corpus, units_dir, tmp_path / "run", max_steps=2, eval_interval=2)
    with pytest.raises(DataError,
                       match=r"holds units of mfcc-k100-.*makes phone-.*data\.units_dir"):
        train_lm(load_config(TINY, ov + ["--data.tokenizer=phone-k100"]), progress=False)
    assert not (tmp_path / "run" / "state.json").exists()
    out = train_lm(load_config(TINY, ov), progress=False)
    assert (out / "model" / "model.safetensors").exists()


def test_an_empty_tokenizer_trusts_given_shards_and_needs_them(small_corpus, units_dir, tmp_path):
    from speechlm.errors import DataError

    ov = overrides(small_corpus, units_dir, tmp_path / "run", max_steps=2, eval_interval=2)
    out = train_lm(load_config(TINY, ov + ["--data.tokenizer="]), progress=False)
    assert (out / "model" / "model.safetensors").exists()
    ov = overrides(small_corpus, tmp_path / "none", tmp_path / "run2", max_steps=2)
    with pytest.raises(DataError, match="data.tokenizer is empty and data.units_dir .* no shards"):
        train_lm(load_config(TINY, ov + ["--data.tokenizer="]), progress=False)


def test_max_minutes_stops_early_like_the_last_step_and_resumes(small_corpus, units_dir,
                                                                  tmp_path):
    """train.max_minutes: past the limit the run stops after the current step with what the last
    step does (validation, best weights exported, checkpoint); a rerun without the limit resumes
    to max_steps on the same schedule; a negative limit is refused."""
    import json

    from speechlm.errors import DataError

    run = tmp_path / "run"
    cfg = load_config(TINY, overrides(small_corpus, units_dir, run, max_steps=30,
                                      eval_interval=500, ckpt_interval=500,
                                      max_minutes=1e-9))
    train_lm(cfg, progress=False)
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 1
    assert [s for s, _ in state["valid_loss"]] == [1]
    assert (run / "model" / "config.json").exists()
    cfg = load_config(TINY, overrides(small_corpus, units_dir, run, max_steps=30,
                                      eval_interval=500, ckpt_interval=500))
    train_lm(cfg, progress=False)
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 30 and [s for s, _ in state["valid_loss"]] == [1, 30]
    with pytest.raises(DataError, match="max_minutes must be >= 0"):
        train_lm(load_config(TINY, overrides(small_corpus, units_dir, tmp_path / "bad",
                                             max_minutes=-1)), progress=False)
