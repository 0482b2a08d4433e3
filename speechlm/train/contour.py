"""Train the intonation model of the drawn-F0 path (:mod:`speechlm.prosody`): frame units ->
the utterance's z-scored log-F0 shape.

    speechlm train vocoder --config configs/vocoder/contour-cpu.toml [--train.max_steps=N ...]

The recipe's ``[model] kind = "contour"`` picks this trainer. Data: the unit vocoder's analysed
corpus (``data.cache``, made by ``speechlm train vocoder`` for the same units; its ``train``
and ``valid`` splits): each utterance's frame units and F0 every 10 ms. A batch is
``batch_size`` whole utterances (cut to ``max_frames`` unit frames at a random place when
longer), padded. The target of each voiced frame is the bin of its log F0 z-scored over the
utterance's voiced frames (as the vocoder's F0 input is: :func:`speechlm.vocoder.f0_conditioning`);
the loss is the cross-entropy over voiced frames. Validation also reports ``corr``: the
correlation, over the batch's voiced frames, of the predicted mean z with the true z.
Batches are a pure function of (seed, step) (the loop's contract).

The run directory holds ``model/`` (the best contour model by validation loss, a
:class:`speechlm.prosody.ContourModel`), ``state.safetensors`` (resume), ``log.jsonl`` and
``run.toml``. ``speechlm.vocoder.Vocoder.use_contour`` puts it beside a vocoder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from speechlm.errors import DataError, SpeechLMError
from speechlm.prosody import (
    MIN_PREFIX_VOICED,
    MIN_VOICED,
    UPSAMPLE,
    ContourConfig,
    ContourModel,
    ContourNet,
    known_features,
    z_scored,
)
from speechlm.train.analysed import CacheSplit
from speechlm.train.loop import TrainConfig, TrainTask, fit
from speechlm.train.recipe import load_recipe
from speechlm.vocoder import f0_bin_centres, f0_bin_of

TRAIN_DEFAULTS = TrainConfig.defaults(
    batch_size=16, max_steps=3000, lr=2e-3, min_lr=1e-4, warmup_steps=100, weight_decay=0.01,
    grad_clip=1.0, eval_interval=250, eval_batches=10, ckpt_interval=250, log_interval=25,
    out="outputs/contour")
BATCH_DEFAULTS: dict[str, Any] = {
    "max_frames": 600,  # unit frames (12 s) of an utterance at most; longer ones are cut
    # with model.known_prefix: the share of rows whose first frames' F0 is given (a prompt)
    "prefix_share": 0.5,
    "min_prefix": 25,  # unit frames (0.5 s) known at least, and left to predict at least
}
DATA_DEFAULTS: dict[str, Any] = {
    "cache": "data/vocoder/v2-wphone-ctc",  # the unit vocoder's analysed corpus
}
MODEL_KEYS = {f for f in ContourConfig.__dataclass_fields__
              if f not in ("n_units", "unit_space")} | {"kind"}


def load_config(path, overrides: list[str] = ()) -> dict[str, dict]:
    cfg = load_recipe(path, list(overrides), {"data": DATA_DEFAULTS, "model": {"kind": "contour"},
                                              "train": {**TRAIN_DEFAULTS, **BATCH_DEFAULTS}},
                      MODEL_KEYS)
    t = cfg["train"]
    if int(t["max_frames"]) < 10:
        raise DataError(f"train.max_frames must be >= 10, got {t['max_frames']}")
    if not 0 <= float(t["prefix_share"]) <= 1:
        raise DataError(f"train.prefix_share must be in [0, 1], got {t['prefix_share']}")
    if int(t["min_prefix"]) < 1:
        raise DataError(f"train.min_prefix must be >= 1, got {t['min_prefix']}")
    return cfg


def make_batch(data: CacheSplit, seed: int, step: int, t: dict[str, Any], bins: int,
               known_prefix: bool = False) -> dict[str, torch.Tensor]:
    """The batch of ``step``: a pure function of (seed, step).

    With ``known_prefix`` a share ``t['prefix_share']`` of the rows know the F0 of their first
    ``k`` unit frames (``k`` uniform, at least ``t['min_prefix']`` known and as many left):
    those rows are z-scored over the prefix's voiced frames, as a prompt is at inference, and
    only the frames after it are scored (a prefix with fewer than ``MIN_PREFIX_VOICED`` voiced
    frames is not given). The batch then carries ``known`` ``[B, T, KNOWN_FEATURES]``."""
    rng = np.random.default_rng([seed, step])
    B, cap = int(t["batch_size"]), int(t["max_frames"])
    share, lo = float(t.get("prefix_share", 0.5)), int(t.get("min_prefix", 25))
    rows = []
    while len(rows) < B:
        units, _, f0 = data.item(int(rng.integers(len(data))))
        n = min(len(units), len(f0) // UPSAMPLE)
        f0 = np.asarray(f0[: UPSAMPLE * n], np.float32)
        z, voiced = z_scored(f0)
        if voiced.sum() < MIN_VOICED:
            continue
        a = int(rng.integers(n - cap + 1)) if n > cap else 0
        m = min(n, cap)
        cut = slice(UPSAMPLE * a, UPSAMPLE * (a + m))
        z, voiced, k = z[cut], voiced[cut], 0
        if known_prefix and share > 0 and m >= 2 * lo and rng.random() < share:
            k = int(rng.integers(lo, m - lo + 1))
            zk, vk = z_scored(f0[cut], stats_frames=UPSAMPLE * k)
            if vk[: UPSAMPLE * k].sum() >= MIN_PREFIX_VOICED:
                z, voiced = zk, vk
            else:
                k = 0
        rows.append((np.asarray(units[a : a + m], np.int64), z, voiced, k))
    T = max(len(r[0]) for r in rows)
    units = np.zeros((B, T), np.int64)
    z = np.zeros((B, UPSAMPLE * T), np.float32)
    voiced = np.zeros((B, UPSAMPLE * T), np.float32)
    lengths = np.zeros(B, np.int64)
    known = np.zeros(B, np.int64)
    for i, (u, zz, v, k) in enumerate(rows):
        units[i, : len(u)], lengths[i], known[i] = u, len(u), k
        z[i, : len(zz)], voiced[i, : len(v)] = zz, v
    zt, vt, kt = torch.from_numpy(z), torch.from_numpy(voiced), torch.from_numpy(known)
    after = (torch.arange(UPSAMPLE * T)[None] >= UPSAMPLE * kt[:, None]).float()
    batch = {"units": torch.from_numpy(units), "lengths": torch.from_numpy(lengths),
             "z": zt, "target": f0_bin_of(zt, bins), "mask": vt * after}
    if known_prefix:
        batch["known"] = known_features(zt, vt, kt, T)
    return batch


def contour_losses(model: ContourNet, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cross-entropy over the scored voiced frames (``total``) and the mean-z correlation
    (``corr``)."""
    logits = model(batch["units"], batch["lengths"], batch.get("known"))  # [B, 2T, bins]
    mask = batch["mask"]
    ce = F.cross_entropy(logits.transpose(1, 2), batch["target"], reduction="none")
    total = (ce * mask).sum() / mask.sum().clamp(min=1)
    with torch.no_grad():
        centres = f0_bin_centres(logits.shape[-1]).to(logits)
        mean = (logits.softmax(-1) * centres).sum(-1)[mask > 0]
        true = batch["z"][mask > 0]
        corr = torch.corrcoef(torch.stack([mean, true]))[0, 1] if len(true) > 2 \
            else torch.zeros(())
    return {"total": total, "corr": corr.detach()}


class ContourTask(TrainTask):
    """Frame units -> z-scored log-F0 shape, by cross-entropy over bins."""

    name, main_metric, rate_unit = "contour", "total", "steps"

    def __init__(self, cfg: dict[str, dict], recipe: str | None = None):
        self.cfg, self.recipe = cfg, recipe
        self.data, self.t = cfg["data"], cfg["train"]

    def build(self, device: torch.device, rank: int, world: int) -> ContourNet:
        cache = Path(self.data["cache"])
        if not (cache / "train.json").exists():
            raise DataError(f"{cache}: no analysed corpus (train.json); it is made by "
                            "speechlm train vocoder with data.cache pointing there")
        self.splits = {s: CacheSplit(cache, s) for s in ("train", "valid")}
        if len(self.splits["train"]) == 0 or len(self.splits["valid"]) == 0:
            raise DataError(f"{cache}: an empty train or valid split")
        meta = json.loads((cache / "train.json").read_text())
        m = {k: v for k, v in self.cfg["model"].items() if k != "kind"}
        self.mcfg = ContourConfig(n_units=int(meta["n_units"]), unit_space=meta["unit_space"], **m)
        self.training = {"steps": 0, "cache": str(cache), "recipe": self.recipe,
                         "seed": self.t["seed"], "train_utterances": len(self.splits["train"])}
        return ContourNet(self.mcfg)

    def batch(self, split: str, seed: int, index: int) -> dict[str, torch.Tensor]:
        return make_batch(self.splits[split], seed + (0 if split == "train" else 10**6), index,
                          self.t, self.mcfg.bins, self.mcfg.known_prefix)

    def loss(self, model, batch):
        ls = contour_losses(model, batch)
        return ls["total"], ls

    def describe(self, model) -> str:
        n = sum(p.numel() for p in model.parameters())
        return (f"{n / 1e6:.2f}M parameters; {len(self.splits['train'])} train / "
                f"{len(self.splits['valid'])} valid utterances")

    def export(self, out: Path, model, step: int, valid: dict[str, float], rate: float) -> None:
        self.training.update(steps=step, valid={k: round(v, 5) for k, v in valid.items()})
        ContourModel(model, self.training).save(out)


def train_contour(cfg: dict[str, dict], progress: bool = True, recipe: str | None = None) -> Path:
    """Run (or resume) the training described by ``cfg``; returns the run directory."""
    if int(cfg["train"].get("batch_size", 1)) < 1:
        raise SpeechLMError("train.batch_size must be >= 1")
    return fit(ContourTask(cfg, recipe), cfg, progress)


__all__ = ["ContourTask", "contour_losses", "load_config", "make_batch", "train_contour",
           "z_scored"]  # z_scored: speechlm.prosody's, named here as before


if __name__ == "__main__":
    from speechlm.train.loop import main as train_main

    sys.exit(train_main(None, "python -m speechlm.train.contour",
                        "configs/vocoder/contour-cpu.toml", load_config, train_contour))
