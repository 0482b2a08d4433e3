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

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from speechlm import checkpoint
from speechlm.errors import DataError, SpeechLMError
from speechlm.io import write_text_atomic
from speechlm.lm import LMConfig, UnitLM
from speechlm.train.recipe import load_state, lr_at, read_recipe, save_state, to_toml

log = logging.getLogger(__name__)

TRAIN_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,  # sequences per step, all ranks together
    "max_steps": 1000,  # optimizer steps
    "lr": 1e-3,  # peak learning rate
    "min_lr": 1e-4,  # final learning rate of the cosine schedule
    "warmup_steps": 100,  # linear warm-up
    "weight_decay": 0.1,  # on matrices only
    "grad_clip": 1.0,  # global norm
    "eval_interval": 200,  # steps between validation passes
    "eval_batches": 10,  # validation batches per pass
    "ckpt_interval": 200,  # steps between checkpoints
    "log_interval": 20,  # steps between log records
    "seed": 0,
    "out": "outputs/lm",  # run directory
    "device": "auto",  # auto | cpu | cuda
    "dtype": "float32",  # float32 | bfloat16 (autocast, GPU)
    "threads": 0,  # torch threads per process (0: leave torch's default)
}
DATA_DEFAULTS: dict[str, Any] = {
    "corpus": "data/corpus",  # corpus with train/valid/test manifests
    "tokenizer": "mfcc-k100",  # tokenizer name or directory
    "units_dir": "data/units/mfcc-k100-dedup",  # where the unit shards are (made if missing)
    "dedup": True,  # collapse repeated units (GSLM) or train on frame-rate units
}


# --------------------------------------------------------------------------- configuration


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict[str, dict]:
    """Read a recipe TOML (sections data / model / train) and apply ``--section.key=value``."""
    cfg = read_recipe(path, list(overrides), {"data": dict(DATA_DEFAULTS), "model": {},
                                              "train": dict(TRAIN_DEFAULTS)})
    model_keys = {f.name for f in dataclasses.fields(LMConfig)} - {
        "n_units", "unit_space", "dedup", "frame_rate"}  # these come from the data
    unknown = {f"train.{k}" for k in set(cfg["train"]) - set(TRAIN_DEFAULTS)}
    unknown |= {f"data.{k}" for k in set(cfg["data"]) - set(DATA_DEFAULTS)}
    unknown |= {f"model.{k}" for k in set(cfg["model"]) - model_keys}
    if unknown:
        raise DataError(f"unknown config keys: {', '.join(sorted(unknown))}")
    return cfg


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


# --------------------------------------------------------------------------- state


def _save_state(out: Path, model: UnitLM, opt: torch.optim.Optimizer, step: int,
                history: dict) -> None:
    save_state(out, {k: v for k, v in model.state_dict().items()
                     if k != "head.weight"}, opt, step, history)  # head is tied to embed


def _load_state(out: Path, model: UnitLM, opt: torch.optim.Optimizer) -> tuple[int, dict]:
    msd, step, history = load_state(out, opt)
    msd["head.weight"] = msd["embed.weight"]
    model.load_state_dict(msd, strict=True)
    return step, history


def export_model(out: Path, model: UnitLM, extra: dict[str, Any]) -> Path:
    """Write the inference stage ``out/model`` (config.json + model.safetensors)."""
    sd = {k: v for k, v in model.state_dict().items() if k != "head.weight"}
    cfg = {"model": model.cfg.to_dict(), "unit_space": model.cfg.unit_space, **extra}
    return checkpoint.save_stage(out / "model", "lm", cfg, sd)


# --------------------------------------------------------------------------- loop


def _setup_distributed(device_pref: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise SpeechLMError("train.device = cuda but no GPU is visible")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def train_lm(cfg: dict[str, dict], progress: bool = True, recipe: str | None = None) -> Path:
    """Run (or resume) the training described by ``cfg``; returns the run directory."""
    from speechlm.data.shards import dump_units, open_shard

    t, d = cfg["train"], cfg["data"]
    if t["threads"]:
        torch.set_num_threads(int(t["threads"]))
    rank, world, device = _setup_distributed(t["device"])
    if t["batch_size"] % world:
        raise SpeechLMError(f"train.batch_size {t['batch_size']} must divide by the "
                            f"{world} processes")
    out = Path(t["out"])
    units_dir = Path(d["units_dir"])
    if rank == 0 and not (units_dir / "valid.json").exists():
        from speechlm.tokenizer import Tokenizer

        dump_units(Tokenizer.load(d["tokenizer"]), d["corpus"], units_dir,
                   splits=("train", "valid"), dedup=bool(d["dedup"]), progress=progress)
    if world > 1:
        dist.barrier()
    train_tokens, meta = open_shard(units_dir, "train")
    valid_tokens, _ = open_shard(units_dir, "valid")

    mcfg = LMConfig.from_dict({**cfg["model"], "n_units": meta["n_units"],
                               "unit_space": meta["unit_space"], "dedup": meta["dedup"],
                               "frame_rate": meta["frame_rate"]})
    torch.manual_seed(t["seed"])
    model = UnitLM(mcfg).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=t["lr"], betas=(0.9, 0.95), fused=device.type == "cuda")
    step, history = 0, {"train_loss": [], "valid_loss": []}
    if (out / "state.safetensors").exists():
        step, history = _load_state(out, model, opt)
        if rank == 0:
            log.info("resuming %s at step %d", out, step)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "run.toml", to_toml(cfg))
        log.info("model: %.2fM parameters, %d train tokens, world %d, device %s",
                 model.num_params() / 1e6, len(train_tokens), world, device)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    block, B = mcfg.block_size, t["batch_size"]
    per_rank = B // world
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if t["dtype"] == "bfloat16"
           else torch.autocast(device.type, enabled=False))
    meta_out = {"units_per_second": meta["units_per_second"],
                "training": {"steps": step, "tokens_seen": step * B * block,
                             "corpus": d["corpus"], "tokenizer": d["tokenizer"],
                             "units_dir": d["units_dir"],
                             "recipe": recipe, "seed": t["seed"]}}

    def evaluate() -> float:
        model.eval()
        total = torch.zeros(2, device=device)
        with torch.no_grad(), amp:
            for i in range(t["eval_batches"]):
                offs = batch_offsets(t["seed"] + 1, i, len(valid_tokens), block, B)
                x, y = get_batch(valid_tokens, offs[rank * per_rank : (rank + 1) * per_rank],
                                 block, device)
                _, loss = model(x, y)
                total += torch.stack([loss.float() * y.numel(), torch.tensor(
                    float(y.numel()), device=device)])
        if world > 1:
            dist.all_reduce(total)
        model.train()
        return float(total[0] / total[1])

    bar = tqdm(total=t["max_steps"], initial=step, desc="train lm", unit="step",
               disable=not progress or rank != 0)
    model.train()
    t0, tok_count = time.perf_counter(), 0
    log_f = (out / "log.jsonl").open("a") if rank == 0 else None
    while step < t["max_steps"]:
        lr = lr_at(step, t)
        for g in opt.param_groups:
            g["lr"] = lr
        offs = batch_offsets(t["seed"], step, len(train_tokens), block, B)
        x, y = get_batch(train_tokens, offs[rank * per_rank : (rank + 1) * per_rank], block,
                         device)
        with amp:
            _, loss = ddp(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        step += 1
        tok_count += x.numel() * world
        bar.update(1)
        if step % t["log_interval"] == 0 or step == t["max_steps"]:
            lv = loss.detach().float()
            if world > 1:
                dist.all_reduce(lv)
                lv /= world
            rate = tok_count / (time.perf_counter() - t0)
            history["train_loss"].append([step, round(float(lv), 5)])
            bar.set_postfix(loss=f"{float(lv):.3f}", tok_s=f"{rate:.0f}")
            if log_f:
                log_f.write(json.dumps({"step": step, "loss": float(lv), "lr": lr,
                                        "grad_norm": float(gnorm), "tokens_per_s": rate}) + "\n")
                log_f.flush()
        if step % t["eval_interval"] == 0 or step == t["max_steps"]:
            vl = evaluate()
            history["valid_loss"].append([step, round(vl, 5)])
            if log_f:
                log_f.write(json.dumps({"step": step, "valid_loss": vl}) + "\n")
                log_f.flush()
            best = history.get("best_valid")
            if rank == 0:
                log.info("step %d: valid loss %.4f (ppl %.2f)", step, vl, math.exp(vl))
                if best is None or vl < best[1]:  # model/ keeps the best weights on valid
                    meta_out["training"].update(
                        steps=step, tokens_seen=step * B * block, valid_loss=round(vl, 5),
                        tokens_per_s=round(tok_count / (time.perf_counter() - t0)))
                    export_model(out, model, meta_out)
            if best is None or vl < best[1]:
                history["best_valid"] = [step, round(vl, 5)]
        if step % t["ckpt_interval"] == 0 or step == t["max_steps"]:
            if rank == 0:
                _save_state(out, model, opt, step, history)
            if world > 1:
                dist.barrier()
    bar.close()
    if log_f:
        log_f.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechlm train lm",
                                description="Train the unit LM from a recipe TOML; extra "
                                "--section.key=value arguments override the recipe.")
    p.add_argument("--config", help="recipe, e.g. configs/lm/cpu.toml")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args, extra = build_arg_parser().parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        cfg = load_config(args.config, extra)
        train_lm(cfg, progress=not args.quiet, recipe=args.config)
    except SpeechLMError as err:
        print(f"speechlm: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
