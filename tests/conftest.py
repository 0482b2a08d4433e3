"""Shared fixtures: synthetic audio and a small synthesized corpus (built once per session)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm.audio import SAMPLE_RATE

HAVE_SYNTH = all(shutil.which(t) for t in ("flite", "festival", "espeak-ng", "sox"))


def tone(seconds: float, sr: int = SAMPLE_RATE, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A deterministic speech-like test signal: a gliding harmonic tone plus a little noise."""
    t = np.arange(int(seconds * sr)) / sr
    f = freq * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 2.3 * t))
    x += np.random.default_rng(seed).normal(0, 0.01, len(t))
    return x.astype(np.float32)


@pytest.fixture
def wav_file(tmp_path):
    """Write a test signal and return its path."""

    def make(seconds=2.0, sr=SAMPLE_RATE, channels=1, name="x.wav", **kw):
        x = tone(seconds, sr, **kw)
        if channels > 1:
            x = np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)
        p = tmp_path / name
        sf.write(str(p), x, sr)
        return p

    return make


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """The --small corpus (four voices, 19 sentences), synthesized once."""
    if not HAVE_SYNTH:
        pytest.skip("synthesizers missing: run scripts/setup.sh (apt-get install flite ...)")
    from speechlm.data.corpus import synth_corpus

    out = tmp_path_factory.mktemp("corpus")
    synth_corpus(out, small=True, progress=False)
    return out


@pytest.fixture(scope="session")
def small_tokenizer(small_corpus, tmp_path_factory):
    """A K=16 MFCC tokenizer trained on the small corpus."""
    from speechlm.data.manifest import read_manifest
    from speechlm.features import MFCCEncoder
    from speechlm.train.tokenizer import train_tokenizer

    torch.manual_seed(0)
    tok = train_tokenizer(read_manifest(small_corpus / "train.tsv"), MFCCEncoder(), k=16,
                          progress=False)
    path = tmp_path_factory.mktemp("tok") / "tok"
    tok.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_vocoder_run(small_corpus, tmp_path_factory):
    """(run directory, work directory) of a tiny vocoder trained 40 steps on the small corpus."""
    from speechlm.train.vocoder import load_config, train_vocoder

    tmp = tmp_path_factory.mktemp("voc")
    cfg = load_config("configs/vocoder/tiny.toml", [
        f"--data.corpus={small_corpus}", f"--data.cache={tmp / 'cache'}",
        f"--train.out={tmp / 'run'}", "--train.max_steps=40", "--train.eval_interval=20",
        "--train.ckpt_interval=20"])
    return train_vocoder(cfg, progress=False), tmp


@pytest.fixture(scope="session")
def long_prompt_repeats():
    """How many copies of a recording of ``n`` samples at ``sr`` make a prompt of ``factor``
    times the bundled LM's context in seconds (its context in units over its unit rate: a switch
    of the default changes both): ``long_prompt_repeats(n, sr, factor)``."""
    import math

    from speechlm.lm import DEFAULT_LM, LanguageModel

    lm = LanguageModel.load(DEFAULT_LM)
    context_s = (lm.block_size - 1) / lm.units_per_second
    return lambda n, sr, factor: math.ceil(factor * context_s * sr / n)


@pytest.fixture
def one_thread():
    """Tiny models: intra-op threads only add overhead (and contend with other jobs), and runs
    compare bit-for-bit. Modules use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# What a failure of the launcher or of gloo's loopback connections prints (the rendezvous store,
# a worker's socket to its peer), as opposed to an error of the training code under test.
TORCHRUN_NETWORK_ERRORS = ("DistNetworkError", "DistStoreError", "RendezvousConnectionError",
                           "RendezvousTimeoutError", "Connection closed by peer",
                           "Connection reset by peer", "Connection refused",
                           "Address already in use", "Socket Timeout")


def run_torchrun(module: str, args: list[str], out, nproc: int = 2) -> None:
    """Run ``python -m module args`` under ``torchrun --standalone`` on one thread per process.

    A failure is reported with each rank's own stderr (torchrun's ``--log-dir``; a bare
    CalledProcessError, or the launcher's summary, hides why a rank failed: CI once failed here
    with nothing else to go on). A failure whose output names one of
    :data:`TORCHRUN_NETWORK_ERRORS` is a property of the machine's loopback under load, not of
    the code under test: it is retried once, from an empty ``out``, with a warning that carries
    the first attempt's output; any other failure, or a second one, fails the test.
    """
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    import warnings
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in (1, 2):
        with tempfile.TemporaryDirectory() as logs:
            cmd = [str(torchrun), "--standalone", f"--nproc_per_node={nproc}",
                   f"--log-dir={logs}", "--redirects=3", "-m", module, *args]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode == 0:
                return
            ranks = [f"rank {p.parent.name} stderr:\n" + "\n".join(
                p.read_text(errors="replace").strip().splitlines()[-30:])
                for p in sorted(Path(logs).rglob("stderr.log"))]
        launcher = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        report = "\n".join([*ranks, f"torchrun:\n{launcher}"])
        if attempt == 2 or not any(m in report for m in TORCHRUN_NETWORK_ERRORS):
            raise AssertionError(f"torchrun exited {proc.returncode} (attempt {attempt}):\n"
                                 f"{report}")
        warnings.warn(f"torchrun's process group failed, retrying once:\n{report}",
                      stacklevel=2)
        shutil.rmtree(out, ignore_errors=True)
