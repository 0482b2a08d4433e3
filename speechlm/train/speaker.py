"""Train the speaker encoder (:mod:`speechlm.speaker`) over the world corpus's voice identities.

    speechlm train speaker --config configs/speaker/cpu.toml [--train.max_steps=3000 ...]

Each step draws ``batch_size`` crops of ``crop_seconds`` from random utterances of the
``train`` split (identity = the corpus's speaker label), passes ``p_augment`` of them through
:class:`speechlm.data.augment.Augmenter` (rooms, noise, babble, EQ, band limits, clipping), and
scores the embeddings with an additive angular margin softmax over the training identities
(``margin``, ``scale``). Validation: the same loss on the ``valid`` split (the same identities,
held-out sentences). Batches are a pure function of (seed, step) (the loop's contract), so a
killed run resumes where it stopped. ``RUN/model`` is the best :class:`SpeakerModel` so far.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechlm.audio import SAMPLE_RATE, AudioReader
from speechlm.data.manifest import read_manifest, resolve_manifest
from speechlm.errors import DataError
from speechlm.speaker import SpeakerConfig, SpeakerModel, SpeakerNet
from speechlm.train.loop import TrainConfig, TrainTask, fit
from speechlm.train.recipe import load_recipe
from speechlm.vocoder import MelSpectrogram

TRAIN_DEFAULTS = TrainConfig.defaults(
    batch_size=32, max_steps=3000, lr=2e-3, min_lr=1e-5, warmup_steps=200, weight_decay=0.01,
    eval_interval=250, eval_batches=8, ckpt_interval=100, log_interval=25, out="outputs/speaker")
TASK_DEFAULTS: dict[str, Any] = {"crop_seconds": 2.0, "p_augment": 0.6, "margin": 0.2,
                                 "scale": 30.0}
DATA_DEFAULTS: dict[str, Any] = {"corpus": "data/corpus-v2", "min_seconds": 1.0}


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict[str, dict]:
    cfg = load_recipe(path, list(overrides),
                      {"data": DATA_DEFAULTS, "model": SpeakerConfig().to_dict(),
                       "train": {**TRAIN_DEFAULTS, **TASK_DEFAULTS}})
    SpeakerConfig.from_dict(cfg["model"])
    t = cfg["train"]
    if not 0 <= t["margin"] < 1 or t["scale"] <= 0 or t["crop_seconds"] < 0.5:
        raise DataError("train.margin must lie in [0, 1), train.scale be > 0 and "
                        "train.crop_seconds >= 0.5")
    return cfg


class IdentitySet:
    """Utterances of one split grouped by identity (speaker label), the long enough ones."""

    def __init__(self, corpus: str, split: str, min_seconds: float,
                 identities: list[str] | None = None):
        items = [u for u in read_manifest(resolve_manifest(split, corpus))
                 if u.num_samples >= min_seconds * SAMPLE_RATE]
        if any(u.speaker is None for u in items):
            raise DataError(f"{corpus}/{split}: utterances without a speaker label (.spk)")
        self.identities = identities or sorted({u.speaker for u in items})
        index = {s: i for i, s in enumerate(self.identities)}
        self.items = [u for u in items if u.speaker in index]
        self.labels = np.array([index[u.speaker] for u in self.items], dtype=np.int64)
        if not self.items:
            raise DataError(f"{corpus}/{split}: no utterances of the training identities")


class AngularMargin(nn.Module):
    """Additive angular margin softmax: logits ``scale * cos(theta + margin)`` for the target,
    ``scale * cos(theta)`` for the others, over learned unit class centres."""

    def __init__(self, dim: int, n_classes: int, margin: float, scale: float):
        super().__init__()
        self.centres = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cos = emb @ F.normalize(self.centres, dim=1).T  # [B, C]
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(theta + self.margin)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        logits = self.scale * torch.where(onehot, target, cos)
        return F.cross_entropy(logits, labels), (cos.argmax(1) == labels).float().mean()


class SpeakerTrainModel(nn.Module):
    def __init__(self, cfg: SpeakerConfig, n_classes: int, margin: float, scale: float):
        super().__init__()
        self.net = SpeakerNet(cfg)
        self.head = AngularMargin(cfg.dim, n_classes, margin, scale)

    def forward(self, mel: torch.Tensor, labels: torch.Tensor):
        return self.head(self.net(mel), labels)


class SpeakerTask(TrainTask):
    name, main_metric, rate_unit = "speaker", "loss", "steps"

    def __init__(self, cfg: dict[str, dict], recipe: str | None = None):
        self.cfg, self.recipe = cfg, recipe
        self.d, self.t = cfg["data"], cfg["train"]
        self.mcfg = SpeakerConfig.from_dict(cfg["model"])
        self.mel = MelSpectrogram(self.mcfg.n_mels)
        self.augmenter = None

    def build(self, device: torch.device, rank: int, world: int) -> SpeakerTrainModel:
        from speechlm.data.augment import Augmenter

        self.sets = {"train": IdentitySet(self.d["corpus"], "train", self.d["min_seconds"])}
        ids = self.sets["train"].identities
        self.sets["valid"] = IdentitySet(self.d["corpus"], "valid", self.d["min_seconds"], ids)
        self.augmenter = Augmenter()
        model = SpeakerTrainModel(self.mcfg, len(ids), float(self.t["margin"]),
                                  float(self.t["scale"]))
        with torch.no_grad():  # centre the input on a few training crops
            model.net.mel_mean.copy_(self._mels("train", 7, 0)[0].mean((0, 1)))
        self.training = {"steps": 0, "corpus": self.d["corpus"], "recipe": self.recipe,
                         "seed": self.t["seed"], "identities": len(ids)}
        return model

    def _mels(self, split: str, seed: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.sets[split]
        rng = np.random.default_rng([seed, index])
        n = int(self.t["crop_seconds"] * SAMPLE_RATE)
        picks = rng.integers(len(s.items), size=int(self.t["batch_size"]))
        waves = []
        for i in picks:
            u = s.items[int(i)]
            a = int(rng.integers(max(1, u.num_samples - n + 1)))
            with AudioReader(u.path) as r:
                w = r.read(a, a + n)
            waves.append(F.pad(w, (0, n - len(w))))
        x = torch.stack(waves)
        if split == "train":
            aug = self.augmenter(x, seed=int(rng.integers(2**31)))
            keep = torch.from_numpy(rng.random(len(x)) < float(self.t["p_augment"]))
            x = torch.where(keep[:, None], aug, x)
        with torch.no_grad():
            return self.mel(x), torch.from_numpy(s.labels[picks])

    def batch(self, split: str, seed: int, index: int):
        mel, labels = self._mels(split, seed + (0 if split == "train" else 10**6), index)
        return {"mel": mel, "labels": labels}

    def loss(self, model, batch):
        loss, acc = model(batch["mel"], batch["labels"])
        return loss, {"loss": loss.detach(), "accuracy": acc.detach()}

    def describe(self, model) -> str:
        n = sum(p.numel() for p in model.net.parameters())
        return (f"{n / 1e6:.2f}M parameters; {len(self.sets['train'].identities)} identities, "
                f"{len(self.sets['train'].items)} train utterances")

    def export(self, out: Path, model, step: int, valid: dict[str, float], rate: float) -> None:
        self.training.update(steps=step, valid={k: round(v, 5) for k, v in valid.items()})
        net = SpeakerNet(self.mcfg)
        net.load_state_dict(model.net.state_dict())
        SpeakerModel(net, self.training).save(out)


def train_speaker(cfg: dict[str, dict], progress: bool = True, recipe: str | None = None) -> Path:
    return fit(SpeakerTask(cfg, recipe), cfg, progress)


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.loop import main as train_main

    return train_main(argv, "speechlm train speaker", "configs/speaker/cpu.toml", load_config,
                      train_speaker)


__all__ = ["AngularMargin", "SpeakerTask", "load_config", "train_speaker"]


if __name__ == "__main__":
    sys.exit(main())
