"""The GPU scale test's device script, dry-run on the CPU: a pack of a small cache of the bundled
units is unpacked, the step rate probed, the run trained and both exports come back within the
device tool's limits (8 files, 16 MB each) and load as vocoders."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_cache_pack import _cache

from speechlm.train.cache_pack import pack
from speechlm.vocoder import Vocoder

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_vocoder_scale.sh"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PY": sys.executable, "DEVICE": "cpu", "OUT": str(tmp_path / "out"),
            "RUN": str(tmp_path / "run"), "CACHE": str(tmp_path / "cache-unpacked"),
            "PACK": str(tmp_path / "pack"), "OMP_NUM_THREADS": "1",
            "EXTRA": "--train.batch_size=4 --train.crop_frames=20 --train.eval_batches=1 "
                     "--train.warmup_steps=1 --train.threads=1", **extra}


def test_dry_run_probes_trains_and_returns_both_exports(tmp_path):
    space = json.loads((REPO / "speechlm/pretrained/phone-vocoder/config.json").read_text())
    src = _cache(tmp_path / "cache", unit_space=space["unit_space"], tokenizer="phone-k100")
    pack(src, tmp_path / "pack", progress=False)
    proc = subprocess.run(["bash", str(SCRIPT)], env=_env(tmp_path, PROBE_STEPS="2",
                                                          BUDGET_S="1"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    files = sorted(p.name for p in out.iterdir())
    assert files == ["best.tar", "done.json", "last.tar", "log.jsonl", "probe.jsonl",
                     "run.toml"]
    assert all((out / f).stat().st_size < 16e6 for f in files)
    done = json.loads((out / "done.json").read_text())
    # the budget was spent before the run: it trains as many steps as the probe did
    assert done["steps"] == done["last_steps"] == 2
    assert "mel" in done["valid_last"] and "mel" in done["train_last"]
    assert len([x for x in (out / "probe.jsonl").read_text().splitlines()
                if "steps_per_s" in x]) == 2
    state = load_file(tmp_path / "run" / "state.safetensors")
    for name in ("best", "last"):
        with tarfile.open(out / f"{name}.tar") as t:
            t.extractall(tmp_path / "x", filter="data")
        v = Vocoder.load(tmp_path / "x" / name)
        assert v.cfg.unit_space == space["unit_space"]
        assert v.training["init"] == "phone-vocoder"
        if name == "last":
            assert v.training["weights"] == "last"
            w = state["model.embed.weight"]  # the run's last weights, float16 on disk
            assert torch.allclose(v.model.embed.weight.float(), w, atol=2e-3, rtol=1e-3)
    # a rerun finds the run finished and returns the same exports
    again = subprocess.run(["bash", str(SCRIPT)], env=_env(tmp_path, STEPS="2"),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "done.json").read_text())["steps"] == 2


def test_without_a_pack_it_says_what_to_run(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT)], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "gpu_vocoder_prepare.sh" in proc.stderr and proc.stderr.count("\n") == 1
