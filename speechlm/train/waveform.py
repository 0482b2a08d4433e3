"""Train the harmonic-plus-noise waveform stage (:mod:`speechlm.waveform`): log-mel + F0 ->
waveform, on spectral losses alone.

    speechlm train vocoder --config configs/vocoder/hn-cpu.toml [--train.max_steps=3000 ...]

The recipe's ``[model] kind = "waveform"`` picks this trainer (``speechlm train vocoder`` reads
it; the unit vocoder is the default). Data: a seeded subset of ``data.max_utterances`` of the
corpus's ``train`` split (and of ``valid`` for validation). F0 (DIO + StoneMask every 10 ms) is
tracked once per utterance into ``data.cache`` (``<split>.npz``), in parallel, and reused. A
batch is random crops of ``crop_frames`` frames: the log-mel of the whole utterance cut to the
crop (so the crop keeps its true context), the crop's F0, and its samples ``[i * 160,
(i + N) * 160)``. The loss is the multi-resolution STFT loss (spectral convergence + L1 of log
magnitudes at FFT sizes ``stft_sizes``, hop a quarter) plus ``mel_weight`` x L1 of the output's
log-mel against the input's. Batches are a pure function of (seed, step) (the loop's contract).

The run directory holds ``model/`` (the best waveform stage by validation loss, a
:class:`speechlm.waveform.WaveformModel`), ``state.safetensors`` (resume), ``log.jsonl``,
``run.toml`` and ``samples/step-N/*.wav``.
"""

from __future__ import annotations

import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from speechlm.audio import f0_track, load_audio, save_audio
from speechlm.data.manifest import read_manifest, resolve_manifest
from speechlm.errors import DataError, SpeechLMError
from speechlm.io import atomic_path
from speechlm.train.loop import TrainConfig, TrainTask, fit
from speechlm.train.recipe import load_recipe
from speechlm.vocoder import MelSpectrogram
from speechlm.waveform import HOP, HarmonicNoise, WaveformConfig, WaveformModel

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = TrainConfig.defaults(
    batch_size=8, max_steps=3000, lr=2e-3, min_lr=1e-4, warmup_steps=200, weight_decay=0.0,
    grad_clip=5.0, eval_interval=250, eval_batches=6, ckpt_interval=100, log_interval=25,
    out="outputs/waveform")
BATCH_DEFAULTS: dict[str, Any] = {
    "crop_frames": 80,  # frames per crop (0.8 s)
    "stft_sizes": [2048, 1024, 512, 256, 128],  # the multi-resolution STFT loss
    "mel_weight": 1.0,
    "sample_interval": 1000,  # steps between audio samples (0: never)
}
DATA_DEFAULTS: dict[str, Any] = {
    "corpus": "data/corpus-v2",
    "cache": "data/waveform/corpus-v2",  # F0 tracks (made if missing)
    "max_utterances": 4000,  # of train (valid: a tenth); a seeded subset
    "jobs": 0,  # F0 processes (0: all cores)
}
MODEL_KEYS = {f for f in WaveformConfig.__dataclass_fields__ if f != "sample_rate"} | {"kind"}


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict[str, dict]:
    cfg = load_recipe(path, list(overrides), {"data": DATA_DEFAULTS, "model": {"kind": "waveform"},
                                              "train": {**TRAIN_DEFAULTS, **BATCH_DEFAULTS}},
                      MODEL_KEYS)
    t = cfg["train"]
    if t["crop_frames"] < 2 * max(t["stft_sizes"]) // HOP:
        raise DataError(f"train.crop_frames {t['crop_frames']} is too short for an STFT of "
                        f"{max(t['stft_sizes'])} (needs >= {2 * max(t['stft_sizes']) // HOP})")
    WaveformConfig.from_dict({k: v for k, v in cfg["model"].items() if k != "kind"})
    return cfg


# --------------------------------------------------------------------------- F0 cache


def _f0_of(path: str) -> np.ndarray:
    torch.set_num_threads(1)
    return f0_track(load_audio(path).numpy()).astype(np.float32)


def build_cache(d: dict[str, Any], progress: bool = True) -> None:
    """``data.cache/<split>.npz`` for train and valid: paths, F0 tracks (concatenated) and
    offsets. Skipped when present."""
    cache = Path(d["cache"])
    for split, n in (("train", int(d["max_utterances"])),
                     ("valid", max(20, int(d["max_utterances"]) // 10))):
        out = cache / f"{split}.npz"
        if out.exists():
            continue
        utts = read_manifest(resolve_manifest(split, d["corpus"]))
        rng = np.random.default_rng(0)
        pick = sorted(rng.permutation(len(utts))[: min(n, len(utts))].tolist())
        paths = [str(utts[i].path) for i in pick]
        jobs = int(d["jobs"]) or os.cpu_count() or 1
        with ProcessPoolExecutor(jobs) as ex:
            f0s = list(tqdm(ex.map(_f0_of, paths, chunksize=8), total=len(paths),
                            desc=f"F0 {split}", unit="utt", disable=not progress))
        offsets = np.cumsum([0] + [len(f) for f in f0s]).astype(np.int64)
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, paths=np.array(paths), f0=np.concatenate(f0s), offsets=offsets)


class F0Split:
    def __init__(self, cache: Path, split: str):
        z = np.load(cache / f"{split}.npz")
        self.paths = [str(p) for p in z["paths"]]
        self.f0, self.offsets = z["f0"], z["offsets"]

    def __len__(self) -> int:
        return len(self.paths)

    def f0_of(self, i: int) -> np.ndarray:
        return self.f0[self.offsets[i] : self.offsets[i + 1]]


# --------------------------------------------------------------------------- batches and loss


def make_batch(data: F0Split, seed: int, step: int, t: dict[str, Any],
               mel: MelSpectrogram) -> dict[str, torch.Tensor]:
    """Crops for global batch ``step``: a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, step])
    N = int(t["crop_frames"])
    mels, f0s, wavs = [], [], []
    while len(wavs) < int(t["batch_size"]):
        i = int(rng.integers(len(data)))
        wav = load_audio(data.paths[i])
        with torch.no_grad():
            m = mel(wav[None])[0]  # [floor(S/160)+1, M]
        f0 = data.f0_of(i)
        frames = min(len(m), len(f0), len(wav) // HOP)
        if frames < N:
            continue
        a = int(rng.integers(frames - N + 1))
        mels.append(m[a : a + N])
        f0s.append(torch.from_numpy(f0[a : a + N].copy()))
        wavs.append(wav[a * HOP : (a + N) * HOP])
    return {"mel": torch.stack(mels), "f0": torch.stack(f0s), "wav": torch.stack(wavs)}


def stft_loss(y: torch.Tensor, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Multi-resolution STFT loss of output ``y`` against target ``x`` (``[B, S]``): per size,
    spectral convergence + mean |log|Y| - log|X||."""
    total = y.new_zeros(())
    for n in sizes:
        win = torch.hann_window(n, device=y.device)
        Y = torch.stft(y, n, n // 4, window=win, return_complex=True).abs()
        X = torch.stft(x, n, n // 4, window=win, return_complex=True).abs()
        sc = torch.linalg.norm(Y - X) / torch.linalg.norm(X).clamp(min=1e-7)
        lm = (torch.log(Y.clamp(min=1e-5)) - torch.log(X.clamp(min=1e-5))).abs().mean()
        total = total + sc + lm
    return total / len(sizes)


class WaveformTask(TrainTask):
    """log-mel + F0 -> waveform by harmonic-plus-noise synthesis."""

    name, main_metric, rate_unit = "waveform", "total", "steps"
    betas = (0.8, 0.99)

    def __init__(self, cfg: dict[str, dict], recipe: str | None = None):
        self.cfg, self.recipe = cfg, recipe
        self.data, self.t = cfg["data"], cfg["train"]
        self.mcfg = WaveformConfig.from_dict({k: v for k, v in cfg["model"].items()
                                              if k != "kind"})
        self.mel = MelSpectrogram(self.mcfg.n_mels)

    def prepare(self, progress: bool) -> None:
        build_cache(self.data, progress)

    def build(self, device: torch.device, rank: int, world: int) -> HarmonicNoise:
        cache = Path(self.data["cache"])
        self.splits = {s: F0Split(cache, s) for s in ("train", "valid")}
        if len(self.splits["train"]) == 0:
            raise DataError(f"{cache}: no training utterances")
        model = HarmonicNoise(self.mcfg)
        stats = make_batch(self.splits["train"], 12345, 0, {**self.t, "batch_size": 32},
                           self.mel)["mel"].reshape(-1, self.mcfg.n_mels)
        model.mel_mean.copy_(stats.mean(0))
        model.mel_std.copy_(stats.std(0).clamp(min=1e-3))
        self.training = {"steps": 0, "corpus": self.data["corpus"], "recipe": self.recipe,
                         "seed": self.t["seed"], "train_utterances": len(self.splits["train"])}
        return model

    def batch(self, split: str, seed: int, index: int) -> dict[str, torch.Tensor]:
        return make_batch(self.splits[split], seed + (0 if split == "train" else 10**6), index,
                          self.t, self.mel)

    def loss(self, model, batch):
        y = model(batch["mel"], batch["f0"])
        spec = stft_loss(y, batch["wav"], self.t["stft_sizes"])
        mel_y = self.mel.to(y.device)(y)[:, : batch["mel"].shape[1]]
        mel_l1 = (mel_y - batch["mel"]).abs().mean()
        total = spec + self.t["mel_weight"] * mel_l1
        return total, {"total": total.detach(), "stft": spec.detach(), "mel_l1": mel_l1.detach()}

    def describe(self, model) -> str:
        n = sum(p.numel() for p in model.parameters())
        return (f"{n / 1e6:.2f}M parameters; {len(self.splits['train'])} train / "
                f"{len(self.splits['valid'])} valid utterances")

    def export(self, out: Path, model, step: int, valid: dict[str, float], rate: float) -> None:
        self.training.update(steps=step, valid={k: round(v, 5) for k, v in valid.items()})
        WaveformModel(model, self.training).save(out)

    def after_step(self, run: Path, model, step: int) -> None:
        every = self.t["sample_interval"]
        if not every or not (step % every == 0 or step == self.t["max_steps"]):
            return
        was = model.training
        model.eval()
        valid = self.splits["valid"]
        out = run / "samples" / f"step-{step}"
        out.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            for i in range(min(3, len(valid))):
                wav = load_audio(valid.paths[i])
                m = self.mel(wav[None])[0]
                f0 = torch.from_numpy(valid.f0_of(i).copy())
                n = min(len(m), len(f0))
                y = model(m[None, :n], f0[None, :n], torch.Generator().manual_seed(0))[0]
                save_audio(out / f"{i}.wav", y.clamp(-1, 1), 16000)
        model.train(was)


def train_waveform(cfg: dict[str, dict], progress: bool = True,
                   recipe: str | None = None) -> Path:
    """Run (or resume) the training described by ``cfg``; returns the run directory."""
    if int(cfg["train"].get("batch_size", 1)) < 1:
        raise SpeechLMError("train.batch_size must be >= 1")
    return fit(WaveformTask(cfg, recipe), cfg, progress)


__all__ = ["WaveformTask", "build_cache", "load_config", "make_batch", "stft_loss",
           "train_waveform"]


if __name__ == "__main__":
    from speechlm.train.loop import main as train_main

    sys.exit(train_main(None, "python -m speechlm.train.waveform", "configs/vocoder/hn-cpu.toml",
                        load_config, train_waveform))
