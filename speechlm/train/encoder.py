"""Train a HuBERT-style encoder: masked prediction of k-means unit targets (DDP with torchrun).

    speechlm train encoder --config configs/encoder/cpu-mel.toml [--train.max_steps=2000 ...]
    torchrun --nproc_per_node=2 -m speechlm.train.encoder --config configs/encoder/tiny.toml

Iteration 1 predicts units of MFCC frames (``data.tokenizer = "mfcc-k100"``); iteration 2 the
units of an iteration-1 layer (a tokenizer made by ``speechlm train tokenizer --features
RUN/model --layer L``). The targets are tokenized once into ``data.units_dir``
(:mod:`speechlm.train.encoder_data`). Each step draws a global batch of aligned crops and span
masks from generators seeded by (seed, step) and seeds dropout with (seed, step, rank); rank r of
W takes its slice, so W processes see exactly the batches one process would, and a resumed run
computes exactly what it would have. The run directory holds::

    model/             the encoder with the best validation loss so far, in the speechlm-native
                       SSL format (config.json + model.safetensors): what
                       ``speechlm train tokenizer --features RUN/model --layer L`` loads
    state.safetensors  encoder + head + optimizer tensors and the step, for resuming after a kill
    state.json         the same step and the metric history, human-readable
    log.jsonl          one record per logging / evaluation step
    run.toml           the resolved configuration
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from speechlm.audio import FRAME_SIZE, HOP_SIZE, SAMPLE_RATE
from speechlm.errors import DataError, SpeechLMError
from speechlm.features import num_frames
from speechlm.io import write_text_atomic

# shared with the LM trainer: value parsing, run.toml, the LR schedule, process-group set-up
from speechlm.train.lm import _setup_distributed
from speechlm.train.recipe import load_state, lr_at, read_recipe, save_state, to_toml

log = logging.getLogger(__name__)

TRAIN_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,  # crops per step, all ranks together
    "max_steps": 1000,  # optimizer steps
    "lr": 5e-4,  # peak learning rate
    "min_lr": 1e-5,  # final learning rate of the cosine schedule
    "warmup_steps": 100,  # linear warm-up
    "weight_decay": 0.01,  # on matrices only
    "grad_clip": 10.0,  # global norm
    "eval_interval": 200,  # steps between validation passes
    "eval_batches": 10,  # validation batches per pass
    "ckpt_interval": 200,  # steps between checkpoints
    "log_interval": 20,  # steps between log records
    "seed": 0,
    "out": "outputs/encoder",  # run directory
    "device": "auto",  # auto | cpu | cuda
    "dtype": "float32",  # float32 | bfloat16 (autocast, GPU)
    "threads": 0,  # torch threads per process (0: leave torch's default)
}
DATA_DEFAULTS: dict[str, Any] = {
    "corpus": "data/corpus",  # corpus with train/valid manifests
    "tokenizer": "mfcc-k100",  # target tokenizer: bundled name or directory
    "units_dir": "data/units/mfcc-k100-frames",  # frame-rate target units (made if missing)
    "crop_seconds": 2.0,  # crop length (a batch is cut to its shortest utterance if shorter)
    "min_seconds": 1.0,  # shorter utterances are not drawn
    "workers": 1,  # threads reading audio (a GPU may need several)
}


# --------------------------------------------------------------------------- configuration


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict[str, dict]:
    """Read a recipe TOML (sections data / model / train) and apply ``--section.key=value``."""
    from speechlm.train.hubert import MODEL_DEFAULTS, build_arch

    cfg = read_recipe(path, list(overrides), {"data": dict(DATA_DEFAULTS),
                                              "model": dict(MODEL_DEFAULTS),
                                              "train": dict(TRAIN_DEFAULTS)})
    unknown = [f"{s}.{k}" for s, defaults in (("data", DATA_DEFAULTS), ("model", MODEL_DEFAULTS),
                                              ("train", TRAIN_DEFAULTS))
               for k in sorted(set(cfg[s]) - set(defaults))]
    if unknown:
        raise DataError(f"unknown config keys: {', '.join(unknown)}")
    m, d = cfg["model"], cfg["data"]
    if not 0.0 < m["mask_prob"] <= 1.0 or m["mask_length"] < 1:
        raise DataError("model.mask_prob must lie in (0, 1] and model.mask_length be >= 1")
    if d["crop_seconds"] * SAMPLE_RATE < FRAME_SIZE + HOP_SIZE * (m["mask_length"] - 1):
        raise DataError(f"data.crop_seconds {d['crop_seconds']} is shorter than one masked span")
    build_arch(m)  # validates the architecture now, not after the data is prepared
    return cfg


# --------------------------------------------------------------------------- state


def _save_state(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int,
                history: dict) -> None:
    save_state(out, model.state_dict(), opt, step, history)


def _load_state(out: Path, model: torch.nn.Module,
                opt: torch.optim.Optimizer) -> tuple[int, dict]:
    msd, step, history = load_state(out, opt, next(model.parameters()).device)
    model.load_state_dict(msd, strict=True)
    return step, history


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


# --------------------------------------------------------------------------- loop


def _dropout_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank, 7]).generate_state(1)[0])


def train_encoder(cfg: dict[str, dict], progress: bool = True, recipe: str | None = None) -> Path:
    """Run (or resume) the training described by ``cfg``; returns the run directory."""
    from speechlm.train.encoder_data import (
        draw_crops,
        load_crops,
        open_targets,
        prepare_targets,
        usable,
    )
    from speechlm.train.hubert import HubertPretrainer, build_arch, span_mask

    t, d, m = cfg["train"], cfg["data"], cfg["model"]
    if t["threads"]:
        torch.set_num_threads(int(t["threads"]))
    rank, world, device = _setup_distributed(t["device"])
    B = t["batch_size"]
    if B % world:
        raise SpeechLMError(f"train.batch_size {B} must divide by the {world} processes")
    per_rank = B // world
    out = Path(t["out"])
    if rank == 0:
        prepare_targets(d["tokenizer"], d["corpus"], d["units_dir"], progress=progress)
    if world > 1:
        dist.barrier()
    train_set = open_targets(d["units_dir"], "train", d["corpus"])
    valid_set = open_targets(d["units_dir"], "valid", d["corpus"])
    train_pool = usable(train_set, d["min_seconds"])
    valid_pool = usable(valid_set, d["min_seconds"])
    crop_frames = num_frames(int(d["crop_seconds"] * SAMPLE_RATE))
    n_classes = train_set.n_units

    arch = build_arch(m)
    torch.manual_seed(t["seed"])
    model = HubertPretrainer(arch, n_classes, final_dim=m["final_dim"],
                             logit_temp=m["logit_temp"],
                             feature_grad_mult=m["feature_grad_mult"]).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=t["lr"], betas=(0.9, 0.98), eps=1e-6,
                            fused=device.type == "cuda")
    targets_id = train_set.meta["unit_space"]
    step, history = 0, {"targets": targets_id, "train_loss": [], "valid_loss": [],
                        "valid_acc": []}
    if (out / "state.safetensors").exists():
        try:
            step, history = _load_state(out, model, opt)
        except (RuntimeError, ValueError, KeyError) as err:
            raise SpeechLMError(f"{out / 'state.safetensors'} does not fit this recipe's model "
                                f"({str(err).strip().splitlines()[0]}); choose another "
                                "train.out or remove the old run") from None
        if history.get("targets") != targets_id:
            raise SpeechLMError(f"{out} was trained on targets {history.get('targets')}, "
                                f"data.units_dir holds {targets_id}; choose another train.out")
        if rank == 0:
            log.info("resuming %s at step %d", out, step)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "run.toml", to_toml(cfg))
        log.info("encoder: %.2fM parameters (+ head), %d usable train utterances, K=%d, "
                 "world %d, device %s", sum(p.numel() for p in model.encoder.parameters()) / 1e6,
                 len(train_pool), n_classes, world, device)
    ddp = (torch.nn.parallel.DistributedDataParallel(
        model, find_unused_parameters=m["layer_drop"] > 0) if world > 1 else model)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if t["dtype"] == "bfloat16"
           else torch.autocast(device.type, enabled=False))
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    readers = ThreadPoolExecutor(d["workers"]) if d["workers"] > 1 else None

    def batch(targets, pool, seed: int, i: int):
        """Rank-local (wav, targets, mask) of global batch ``i`` and its masked-frame counts."""
        utt, start, n = draw_crops(seed, i, pool, targets.frames, B, crop_frames)
        mask = span_mask(np.random.default_rng([seed, i, 1]), B, n, m["mask_prob"],
                         m["mask_length"])
        wav, y = load_crops(targets, utt[mine], start[mine], n, readers)
        n_masked = int(mask.sum())
        return wav, y, torch.from_numpy(mask[mine]), n_masked, mask.size - n_masked

    def losses(logits, y, mask, n_masked, n_unmasked):
        """Per-frame CE summed over masked / unmasked frames, divided by the global counts."""
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        hit = (logits.argmax(-1) == y) & mask
        return ((ce * mask).sum() / n_masked, (ce * ~mask).sum() / max(n_unmasked, 1),
                hit.sum() / n_masked)

    def reduce(*xs: torch.Tensor) -> list[float]:
        v = torch.stack([x.detach().float() for x in xs])
        if world > 1:
            dist.all_reduce(v)
        return v.tolist()

    def evaluate() -> tuple[float, float]:
        model.eval()
        total = torch.zeros(2, device=device)
        with torch.no_grad(), amp:
            for i in range(t["eval_batches"]):
                wav, y, mask, nm, nu = batch(valid_set, valid_pool, t["seed"] + 1, i)
                wav, y, mask = wav.to(device), y.to(device), mask.to(device)
                logits, _ = model(wav, mask)
                lm_, _, acc = losses(logits.float(), y, mask, nm, nu)
                total += torch.stack([lm_, acc])
        model.train()
        loss, acc = reduce(total[0], total[1])
        return loss / t["eval_batches"], acc / t["eval_batches"]

    training = {"steps": step, "corpus": d["corpus"], "tokenizer": d["tokenizer"],
                "target_unit_space": train_set.meta["unit_space"], "n_classes": n_classes,
                "units_dir": d["units_dir"], "recipe": recipe, "seed": t["seed"]}
    bar = tqdm(total=t["max_steps"], initial=step, desc="train encoder", unit="step",
               disable=not progress or rank != 0)
    model.train()
    t0, frames_done = time.perf_counter(), 0
    log_f = (out / "log.jsonl").open("a") if rank == 0 else None
    pool = ThreadPoolExecutor(max_workers=1)  # reads the next batch while this one trains
    if step < t["max_steps"]:
        upcoming = pool.submit(batch, train_set, train_pool, t["seed"], step)
    while step < t["max_steps"]:
        wav, y, mask, n_masked, n_unmasked = upcoming.result()
        if step + 1 < t["max_steps"]:
            upcoming = pool.submit(batch, train_set, train_pool, t["seed"], step + 1)
        lr = lr_at(step, t)
        for g in opt.param_groups:
            g["lr"] = lr
        torch.manual_seed(_dropout_seed(t["seed"], step, rank))
        wav, y, mask = wav.to(device), y.to(device), mask.to(device)
        with amp:
            logits, penalty = ddp(wav, mask)
        loss_m, loss_u, acc = losses(logits.float(), y, mask, n_masked, n_unmasked)
        # DDP averages gradients over ranks; the CE terms are rank sums / global counts
        loss = (loss_m + m["unmasked_weight"] * loss_u) * world + m["feature_pen"] * penalty
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        step += 1
        frames_done += y.numel() * world
        bar.update(1)
        if step % t["log_interval"] == 0 or step == t["max_steps"]:
            lm_, lu, ac, pen = reduce(loss_m, loss_u, acc, penalty)
            pen /= world
            rate = frames_done / (time.perf_counter() - t0)
            history["train_loss"].append([step, round(lm_, 5)])
            bar.set_postfix(loss=f"{lm_:.3f}", acc=f"{ac:.3f}", frames_s=f"{rate:.0f}")
            if log_f:
                log_f.write(json.dumps({"step": step, "loss": lm_, "loss_unmasked": lu,
                                        "acc": ac, "feature_pen": pen, "lr": lr,
                                        "grad_norm": float(gnorm), "frames_per_s": rate,
                                        "crop_frames": y.shape[1]}) + "\n")
                log_f.flush()
        if step % t["eval_interval"] == 0 or step == t["max_steps"]:
            vl, va = evaluate()
            history["valid_loss"].append([step, round(vl, 5)])
            history["valid_acc"].append([step, round(va, 5)])
            best = history.get("best_valid")
            if rank == 0:
                log.info("step %d: valid masked loss %.4f, accuracy %.3f", step, vl, va)
                if log_f:
                    log_f.write(json.dumps({"step": step, "valid_loss": vl, "valid_acc": va})
                                + "\n")
                    log_f.flush()
                if best is None or vl < best[1]:  # model/ keeps the best weights on valid
                    training.update(steps=step, valid_loss=round(vl, 5), valid_acc=round(va, 4),
                                    frames_per_s=round(frames_done / (time.perf_counter() - t0)))
                    export_encoder(out / "model", model.encoder, arch, training)
            if best is None or vl < best[1]:
                history["best_valid"] = [step, round(vl, 5)]
        if step % t["ckpt_interval"] == 0 or step == t["max_steps"]:
            if rank == 0:
                _save_state(out, model, opt, step, history)
            if world > 1:
                dist.barrier()
    pool.shutdown(wait=True, cancel_futures=True)
    if readers is not None:
        readers.shutdown(wait=True)
    bar.close()
    if log_f:
        log_f.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechlm train encoder",
                                description="Train a HuBERT-style encoder from a recipe TOML; "
                                "extra --section.key=value arguments override the recipe.")
    p.add_argument("--config", help="recipe, e.g. configs/encoder/cpu-mel.toml")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args, extra = build_arg_parser().parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        cfg = load_config(args.config, extra)
        train_encoder(cfg, progress=not args.quiet, recipe=args.config)
    except SpeechLMError as err:
        print(f"speechlm: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
