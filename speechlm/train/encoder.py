"""Train a HuBERT-style encoder: masked prediction of k-means unit targets (DDP with torchrun).

    speechlm train encoder --config configs/encoder/cpu-mel.toml [--train.max_steps=2000 ...]
    torchrun --nproc_per_node=2 -m speechlm.train.encoder --config configs/encoder/tiny.toml

Iteration 1 predicts units of MFCC frames (``data.tokenizer = "mfcc-k100"``); iteration 2 the
units of an iteration-1 layer (a tokenizer made by ``speechlm train tokenizer --features
RUN/model --layer L``). The targets are tokenized once into ``data.units_dir``
(:mod:`speechlm.train.encoder_data`). Each step draws a global batch of aligned crops and span
masks from generators seeded by (seed, step); the loop (:func:`speechlm.train.loop.fit`) seeds
dropout with (seed, step, rank) and gives rank r of W its slice, so W processes see exactly the
batches one process would, and a resumed run computes exactly what it would have. The run
directory holds::

    model/             the encoder with the best validation loss so far, in the speechlm-native
                       SSL format (config.json + model.safetensors): what
                       ``speechlm train tokenizer --features RUN/model --layer L`` loads
    state.safetensors  encoder + head + optimizer tensors and the step, for resuming after a kill
    state.json         the same step and the metric history, human-readable
    log.jsonl          one record per logging / evaluation step
    run.toml           the resolved configuration
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from speechlm.audio import FRAME_SIZE, HOP_SIZE, SAMPLE_RATE
from speechlm.errors import DataError, SpeechLMError
from speechlm.features import num_frames
from speechlm.train.loop import TrainConfig, TrainTask, fit
from speechlm.train.recipe import load_recipe

TRAIN_DEFAULTS = TrainConfig.defaults(lr=5e-4, min_lr=1e-5, weight_decay=0.01, grad_clip=10.0,
                                      out="outputs/encoder")
DATA_DEFAULTS: dict[str, Any] = {
    "corpus": "data/corpus",  # corpus with train/valid manifests
    "tokenizer": "mfcc-k100",  # target tokenizer: bundled name or directory
    "units_dir": "data/units/mfcc-k100-frames",  # frame-rate target units (made if missing)
    "crop_seconds": 2.0,  # crop length (a batch is cut to its shortest utterance if shorter)
    "min_seconds": 1.0,  # shorter utterances are not drawn
    "workers": 1,  # threads reading audio (a GPU may need several)
}


# --------------------------------------------------------------------------- configuration


def objective_of(path: str | os.PathLike | None, overrides: list[str] = ()) -> str:
    """The recipe's ``model.objective``: ``hubert`` (masked prediction, the default) or
    ``phone`` (:mod:`speechlm.train.phone`)."""
    from speechlm.train.recipe import read_recipe

    raw = read_recipe(path, [o for o in overrides if o.removeprefix("--").startswith("model.")],
                      {"data": {}, "model": {}, "train": {}})
    objective = raw["model"].get("objective", "hubert")
    if objective not in ("hubert", "phone"):
        raise DataError(f"model.objective {objective!r}: expected hubert or phone")
    return objective


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict[str, dict]:
    """Read a recipe TOML (sections data / model / train) and apply ``--section.key=value``;
    a recipe with ``model.objective = "phone"`` is read by :func:`speechlm.train.phone.load_config`
    (its ``train`` key then says so)."""
    if objective_of(path, overrides) == "phone":
        from speechlm.train import phone

        return phone.load_config(path, overrides)
    from speechlm.train.hubert import MODEL_DEFAULTS, build_arch

    cfg = load_recipe(path, list(overrides), {"data": DATA_DEFAULTS, "model": MODEL_DEFAULTS,
                                              "train": TRAIN_DEFAULTS})
    m, d = cfg["model"], cfg["data"]
    if not 0.0 < m["mask_prob"] <= 1.0 or m["mask_length"] < 1:
        raise DataError("model.mask_prob must lie in (0, 1] and model.mask_length be >= 1")
    if d["crop_seconds"] * SAMPLE_RATE < FRAME_SIZE + HOP_SIZE * (m["mask_length"] - 1):
        raise DataError(f"data.crop_seconds {d['crop_seconds']} is shorter than one masked span")
    build_arch(m)  # validates the architecture now, not after the data is prepared
    return cfg


def export_encoder(path: Path, encoder: torch.nn.Module, arch: dict[str, Any],
                   training: dict[str, Any]) -> Path:
    """Write ``encoder`` in the speechlm-native SSL format (what :func:`speechlm.ssl.save_ssl_model`
    writes), atomically, with ``training`` added to its config.json.

    Training never normalises the waveforms, so ``normalize_waveform`` is recorded as false
    whatever the CNN's norm.
    """
    from speechlm.ssl.common import CONFIG_NAME, FORMAT_VERSION, KIND, WEIGHTS_NAME, arch_to_json
    from speechlm.ssl.files import save_safetensors, write_dir_atomic, write_json

    config = {"kind": KIND, "format_version": FORMAT_VERSION, "arch": arch_to_json(arch),
              "normalize_waveform": False, "training": training}
    state = encoder.state_dict()

    def write(tmp: Path) -> None:
        save_safetensors(tmp / WEIGHTS_NAME, state)
        write_json(tmp / CONFIG_NAME, config)

    write_dir_atomic(path, write)
    return path


# --------------------------------------------------------------------------- the task


class EncoderTask(TrainTask):
    """Masked prediction of frame-rate unit targets (HuBERT's loss, with an optional weight on
    the unmasked frames)."""

    name, rate_unit = "encoder", "frames"
    betas, eps = (0.9, 0.98), 1e-6

    def __init__(self, cfg: dict[str, dict], recipe: str | None = None):
        self.cfg, self.recipe = cfg, recipe
        self.data, self.m = cfg["data"], cfg["model"]
        self.train = TrainConfig.from_section(cfg["train"])
        self.ddp_kwargs = {"find_unused_parameters": self.m["layer_drop"] > 0}
        self.readers: ThreadPoolExecutor | None = None

    def prepare(self, progress: bool) -> None:
        from speechlm.train.encoder_data import prepare_targets

        d = self.data
        prepare_targets(d["tokenizer"], d["corpus"], d["units_dir"], progress=progress)

    def build(self, device: torch.device, rank: int, world: int) -> torch.nn.Module:
        from speechlm.train.encoder_data import open_targets, usable
        from speechlm.train.hubert import HubertPretrainer, build_arch

        d, m = self.data, self.m
        self.rank, self.world = rank, world
        per_rank = self.train.batch_size // world
        self.mine = slice(rank * per_rank, (rank + 1) * per_rank)
        self.sets = {s: open_targets(d["units_dir"], s, d["corpus"]) for s in ("train", "valid")}
        self.pools = {s: usable(t, d["min_seconds"]) for s, t in self.sets.items()}
        self.crop_frames = num_frames(int(d["crop_seconds"] * SAMPLE_RATE))
        self.targets_id = self.sets["train"].meta["unit_space"]
        self.readers = ThreadPoolExecutor(d["workers"]) if d["workers"] > 1 else None
        self.arch = build_arch(m)
        return HubertPretrainer(self.arch, self.sets["train"].n_units, final_dim=m["final_dim"],
                                logit_temp=m["logit_temp"],
                                feature_grad_mult=m["feature_grad_mult"])

    def batch(self, split: str, seed: int, index: int):
        """Rank-local (wav, targets, mask) of global batch ``index`` and its masked-frame
        counts."""
        from speechlm.train.encoder_data import draw_crops, load_crops
        from speechlm.train.hubert import span_mask

        targets, B = self.sets[split], self.train.batch_size
        utt, start, n = draw_crops(seed, index, self.pools[split], targets.frames, B,
                                   self.crop_frames)
        mask = span_mask(np.random.default_rng([seed, index, 1]), B, n, self.m["mask_prob"],
                         self.m["mask_length"])
        wav, y = load_crops(targets, utt[self.mine], start[self.mine], n, self.readers)
        n_masked = int(mask.sum())
        return wav, y, torch.from_numpy(mask[self.mine]), n_masked, mask.size - n_masked

    def loss(self, model, batch):
        """Per-frame CE summed over masked / unmasked frames, divided by the global counts."""
        wav, y, mask, n_masked, n_unmasked = batch
        logits, penalty = model(wav, mask)
        logits = logits.float()
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        hit = (logits.argmax(-1) == y) & mask
        loss_m = (ce * mask).sum() / n_masked
        loss_u = (ce * ~mask).sum() / max(n_unmasked, 1)
        # DDP averages gradients over ranks; the CE terms are rank sums / global counts
        total = (loss_m + self.m["unmasked_weight"] * loss_u) * self.world \
            + self.m["feature_pen"] * penalty
        return total, {"loss": loss_m, "loss_unmasked": loss_u, "acc": hit.sum() / n_masked,
                       "feature_pen": penalty / self.world}

    def count(self, batch) -> int:
        return batch[1].numel()

    def log_extra(self, batch) -> dict[str, Any]:
        return {"crop_frames": batch[1].shape[1]}

    def describe(self, model) -> str:
        return (f"{sum(p.numel() for p in model.encoder.parameters()) / 1e6:.2f}M parameters "
                f"(+ head), {len(self.pools['train'])} usable train utterances, "
                f"K={self.sets['train'].n_units}")

    def history(self) -> dict[str, Any]:
        return {"targets": self.targets_id, "valid_acc": []}

    def check_resume(self, history: dict[str, Any]) -> None:
        if history.get("targets") != self.targets_id:
            raise SpeechLMError(f"{self.train.out} was trained on targets "
                                f"{history.get('targets')}, data.units_dir holds "
                                f"{self.targets_id}; choose another train.out")

    def export(self, out: Path, model, step: int, valid: dict[str, float], rate: float) -> None:
        d, t = self.data, self.train
        training = {"steps": step, "corpus": d["corpus"], "tokenizer": d["tokenizer"],
                    "target_unit_space": self.targets_id, "n_classes": self.sets["train"].n_units,
                    "units_dir": d["units_dir"], "recipe": self.recipe, "seed": t.seed,
                    "valid_loss": round(valid["loss"], 5), "valid_acc": round(valid["acc"], 4),
                    "frames_per_s": round(rate)}
        export_encoder(out, model.encoder, self.arch, training)

    def close(self) -> None:
        if self.readers is not None:
            self.readers.shutdown(wait=True)


def train_encoder(cfg: dict[str, dict], progress: bool = True, recipe: str | None = None) -> Path:
    """Run (or resume) the training described by ``cfg`` (HuBERT-style, or the phone objective
    when ``cfg["model"]["objective"] == "phone"``); returns the run directory."""
    if cfg["model"].get("objective") == "phone":
        from speechlm.train.phone import train_phone_encoder

        return train_phone_encoder(cfg, progress, recipe)
    return fit(EncoderTask(cfg, recipe), cfg, progress)


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.loop import main as train_main

    return train_main(argv, "speechlm train encoder", "configs/encoder/cpu-mel.toml",
                      load_config, train_encoder)


if __name__ == "__main__":
    sys.exit(main())
