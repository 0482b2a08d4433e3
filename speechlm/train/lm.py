"""Train the unit LM: one process, or several with ``torchrun`` (DDP; gloo on CPU, NCCL on GPU).

    speechlm train lm --config configs/lm/cpu.toml [--train.max_steps=2000 ...]
    torchrun --nproc_per_node=2 -m speechlm.train.lm --config configs/lm/tiny.toml

The corpus is tokenized once into memory-mapped shards (:mod:`speechlm.data.shards`). Each step
draws a global batch of random windows from a generator seeded by (seed, step); rank r of W takes
its slice, so W processes see exactly the batches one process would, and a resumed run sees the
batches it would have seen. The run directory holds::

    model/             the weights with the best validation loss so far, as a stage
                       (config.json + model.safetensors): what inference loads
    state.safetensors  model + optimizer tensors and the step, for resuming after a kill
    state.json         the same step and loss history, human-readable
    log.jsonl          one record per logging / evaluation step
    run.toml           the resolved configuration
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechlm import checkpoint
from speechlm.errors import DataError
from speechlm.lm import LMConfig, UnitLM
from speechlm.train.loop import TrainConfig, TrainTask, fit
from speechlm.train.recipe import load_recipe
from speechlm.units import DEFAULT_TEXT_VOCAB

TRAIN_DEFAULTS = TrainConfig.defaults(out="outputs/lm")
DATA_DEFAULTS: dict[str, Any] = {
    "corpus": "data/corpus",  # corpus with train/valid/test manifests
    "tokenizer": "mfcc-k100",  # tokenizer name or directory
    "units_dir": "data/units/mfcc-k100-dedup",  # where the unit shards are (made if missing)
    "dedup": True,  # collapse repeated units (GSLM) or train on frame-rate units
    "frames_dir": "",  # frame-rate unit shards: units_dir (dedup) is derived from them if set
    "interleave": False,  # train on units + text + text/speech interleaved at word boundaries
    "mix_dir": "",  # where the interleaved training shard goes (made from frames_dir if missing)
    "text_vocab": DEFAULT_TEXT_VOCAB,  # characters of the text tokens (interleave only)
    "text_ratio": 1.0,  # text-only tokens per unit token of the mix
    "max_span": 8,  # longest run of words in one modality
    "interleave_copies": 1,  # interleaved sequences per utterance with word times
    "phone_text": False,  # mix in the text pool spelled as phones (CTC phone units only)
    "phone_text_ratio": 1.0,  # phone-text tokens per unit token of that mix
}
FROM_DATA = {"n_units", "unit_space", "dedup", "frame_rate", "text_vocab"}  # the shards decide


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict[str, dict]:
    """Read a recipe TOML (sections data / model / train) and apply ``--section.key=value``."""
    model_keys = {f.name for f in dataclasses.fields(LMConfig)} - FROM_DATA
    return load_recipe(path, list(overrides), {"data": DATA_DEFAULTS, "model": {},
                                               "train": TRAIN_DEFAULTS}, model_keys)


# --------------------------------------------------------------------------- batches


def batch_offsets(seed: int, step: int, n_tokens: int, block: int, batch: int) -> np.ndarray:
    """Start offsets of the global batch of ``step``: a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - block - 1, size=batch)


def get_batch(tokens: np.ndarray, offsets: np.ndarray, block: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``[B, block]`` of inputs and next-token targets."""
    idx = offsets[:, None] + np.arange(block + 1)[None, :]
    w = torch.from_numpy(tokens[idx].astype(np.int64))
    return w[:, :-1].to(device), w[:, 1:].to(device)


def export_model(out: Path, model: UnitLM, extra: dict[str, Any]) -> Path:
    """Write the inference stage ``out/model`` (config.json + model.safetensors)."""
    sd = {k: v for k, v in model.state_dict().items() if k != "head.weight"}
    cfg = {"model": model.cfg.to_dict(), "unit_space": model.cfg.unit_space, **extra}
    return checkpoint.save_stage(out / "model", "lm", cfg, sd)


# --------------------------------------------------------------------------- the task


class LMTask(TrainTask):
    """Next-unit prediction on windows of the unit shards."""

    name, rate_unit = "lm", "tokens"

    def __init__(self, cfg: dict[str, dict], recipe: str | None = None):
        self.cfg, self.recipe = cfg, recipe
        self.data, self.train = cfg["data"], TrainConfig.from_section(cfg["train"])

    @property
    def train_dir(self) -> str:
        """The shards training reads: the interleaved or phone-text mix, or the unit shards."""
        d = self.data
        if d["interleave"] and d["phone_text"]:
            raise DataError("data.interleave and data.phone_text are two mixes: choose one")
        mixed = d["interleave"] or d["phone_text"]
        if mixed and not d["mix_dir"]:
            which = "interleave" if d["interleave"] else "phone_text"
            raise DataError(f"data.{which} needs data.mix_dir (where the mixed shard goes)")
        return d["mix_dir"] if mixed else d["units_dir"]

    def prepare(self, progress: bool) -> None:
        from speechlm.data.interleave import build_mix, dedup_shard
        from speechlm.data.oracle import ORACLE_TOKENIZER, dump_phone_shards
        from speechlm.data.shards import dump_units

        d = self.data
        splits = ("train", "valid")
        self.train_dir  # noqa: B018 (refuses a bad mix before anything is built)
        if d["tokenizer"] == ORACLE_TOKENIZER:  # reference phones, not a tokenizer's units
            if d["frames_dir"] or d["interleave"] or d["phone_text"] or not d["dedup"]:
                raise DataError('the phone oracle trains on deduplicated phones only: set '
                                'data.frames_dir = "", data.interleave = false, data.dedup = true')
            dump_phone_shards(d["corpus"], d["units_dir"], splits, progress=progress)
            return
        if d["interleave"] and not (d["frames_dir"] and d["dedup"]):
            raise DataError("data.interleave needs data.frames_dir (frame-rate units, for the "
                            "word times) and data.dedup = true")
        self._check_shard_space(d)
        key = "frames_dir" if d["frames_dir"] else "units_dir"  # the shards the run reads first
        if not d["tokenizer"] and not (Path(d[key]) / "valid.json").exists():
            raise DataError(f"data.tokenizer is empty and data.{key} {d[key]} holds no shards: "
                            "name the tokenizer that makes them")
        if d["frames_dir"] and not (Path(d["frames_dir"]) / "valid.json").exists():
            from speechlm.tokenizer import Tokenizer

            dump_units(Tokenizer.load(d["tokenizer"]), d["corpus"], d["frames_dir"],
                       splits=splits, dedup=False, progress=progress)
        if not (Path(d["units_dir"]) / "valid.json").exists():
            if d["frames_dir"] and d["dedup"]:
                dedup_shard(d["frames_dir"], d["units_dir"], splits)
            else:
                from speechlm.tokenizer import Tokenizer

                dump_units(Tokenizer.load(d["tokenizer"]), d["corpus"], d["units_dir"],
                           splits=splits, dedup=bool(d["dedup"]), progress=progress)
        if d["interleave"]:
            build_mix(d["frames_dir"], d["units_dir"], d["corpus"], self.train_dir,
                      d["text_vocab"], text_ratio=float(d["text_ratio"]),
                      max_span=int(d["max_span"]), copies=int(d["interleave_copies"]),
                      seed=self.train.seed, progress=progress)
        if d["phone_text"]:
            from speechlm.data.phone_text import build_phone_text_mix

            build_phone_text_mix(d["units_dir"], d["corpus"], self.train_dir,
                                 ratio=float(d["phone_text_ratio"]), seed=self.train.seed,
                                 progress=progress)

    @staticmethod
    def _check_shard_space(d: dict[str, Any]) -> None:
        """Refuse unit shards made by another tokenizer than ``data.tokenizer`` (e.g. a bundled
        name that now holds other units): the LM would learn, and name, the stale units. An
        empty ``data.tokenizer`` trusts shards made elsewhere (they then must exist)."""
        if not d["tokenizer"]:
            return
        have = {}
        for key in ("frames_dir", "units_dir"):
            for split in ("train", "valid"):
                meta = Path(d[key]) / f"{split}.json" if d[key] else None
                if meta is not None and meta.exists():
                    have[key] = json.loads(meta.read_text()).get("unit_space")
        if not have:
            return
        from speechlm.tokenizer import Tokenizer

        space = Tokenizer.load(d["tokenizer"]).unit_space
        for key, got in have.items():
            if got != space:
                raise DataError(f"{d[key]} holds units of {got}, but data.tokenizer "
                                f"{d['tokenizer']} makes {space}: choose another data.{key}")

    def build(self, device: torch.device, rank: int, world: int) -> UnitLM:
        from speechlm.data.shards import open_shard

        self.rank, self.world = rank, world
        self.tokens = {s: open_shard(self.train_dir, s)[0] for s in ("train", "valid")}
        self.meta = open_shard(self.train_dir, "train")[1]
        m = self.meta
        self.mcfg = LMConfig.from_dict({**self.cfg["model"], "n_units": m["n_units"],
                                        "unit_space": m["unit_space"], "dedup": m["dedup"],
                                        "frame_rate": m["frame_rate"],
                                        "text_vocab": m.get("text_vocab", "")})
        return UnitLM(self.mcfg)

    def batch(self, split: str, seed: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        B, block = self.train.batch_size, self.mcfg.block_size
        per_rank = B // self.world
        offs = batch_offsets(seed, index, len(self.tokens[split]), block, B)
        return get_batch(self.tokens[split], offs[self.rank * per_rank:(self.rank + 1) * per_rank],
                         block, torch.device("cpu"))

    def loss(self, model, batch):
        _, loss = model(*batch)
        return loss, {"loss": loss / self.world}

    def count(self, batch) -> int:
        return batch[0].numel()

    def describe(self, model: UnitLM) -> str:
        return (f"{model.num_params() / 1e6:.2f}M parameters, "
                f"{len(self.tokens['train'])} train tokens")

    def state_tensors(self, model: UnitLM) -> dict[str, torch.Tensor]:
        return {k: v for k, v in model.state_dict().items() if k != "head.weight"}  # tied

    def load_state_tensors(self, model: UnitLM, tensors: dict[str, torch.Tensor]) -> None:
        tensors["head.weight"] = tensors["embed.weight"]
        model.load_state_dict(tensors, strict=True)

    def export(self, out: Path, model: UnitLM, step: int, valid: dict[str, float],
               rate: float) -> None:
        t, d = self.train, self.data
        export_model(out.parent, model, {
            "units_per_second": self.meta["units_per_second"],
            "training": {"steps": step, "tokens_seen": step * t.batch_size * self.mcfg.block_size,
                         "corpus": d["corpus"], "tokenizer": d["tokenizer"],
                         "units_dir": d["units_dir"], "recipe": self.recipe, "seed": t.seed,
                         **({"frames_dir": d["frames_dir"]} if d["frames_dir"] else {}),
                         **({"mix_dir": d["mix_dir"], "mix": self.meta.get("mix")}
                            if d["interleave"] or d["phone_text"] else {}),
                         **({"phone_text_ratio": float(d["phone_text_ratio"])}
                            if d["phone_text"] else {}),
                         "valid_loss": round(valid["loss"], 5), "tokens_per_s": round(rate)}})


def train_lm(cfg: dict[str, dict], progress: bool = True, recipe: str | None = None) -> Path:
    """Run (or resume) the training described by ``cfg``; returns the run directory."""
    return fit(LMTask(cfg, recipe), cfg, progress)


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.loop import main as train_main

    return train_main(argv, "speechlm train lm", "configs/lm/cpu.toml", load_config, train_lm)


if __name__ == "__main__":
    sys.exit(main())
