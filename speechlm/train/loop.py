"""One training loop for every stage: :func:`fit` runs a :class:`TrainTask`.

A task brings what differs between stages (its data, its model and its loss); the loop does
everything else, the same way for the LM, the encoder and the vocoder:

* one process, or several under ``torchrun`` (DDP; gloo on CPU, NCCL on GPU);
* batches that are a pure function of (seed, step): rank r of W takes its slice of the global
  batch, so W processes see the batches one process would, and torch's RNG is reseeded from
  (seed, step, rank) before every step, so dropout is reproducible too;
* the next batch is prepared in a thread while this one trains;
* AdamW with weight decay on matrices only, a linear warm-up then cosine learning rate
  (:func:`speechlm.train.recipe.lr_at`), gradient clipping, optional bfloat16 autocast;
* logging to ``log.jsonl`` and a progress bar; validation every ``eval_interval`` steps, and
  the weights with the best validation loss exported by the task (``RUN/model``);
* an atomic checkpoint (``state.safetensors`` + ``state.json``) every ``ckpt_interval`` steps;
  a killed run started again resumes there and computes exactly what it would have.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from speechlm.errors import DataError, SpeechLMError
from speechlm.io import write_text_atomic
from speechlm.train.recipe import load_state, lr_at, save_state, to_toml

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The ``[train]`` keys every trainer shares (each trainer has its own defaults)."""

    batch_size: int = 32  # examples per step, all ranks together
    max_steps: int = 1000  # optimizer steps
    lr: float = 1e-3  # peak learning rate
    min_lr: float = 1e-4  # final learning rate of the cosine schedule
    warmup_steps: int = 100  # linear warm-up
    weight_decay: float = 0.1  # AdamW decay, on matrices only
    grad_clip: float = 1.0  # global gradient norm
    eval_interval: int = 200  # steps between validation passes
    eval_batches: int = 10  # validation batches per pass
    ckpt_interval: int = 200  # steps between checkpoints
    log_interval: int = 20  # steps between log records
    seed: int = 0  # batches, initial weights and dropout all follow from it
    out: str = "outputs/run"  # run directory
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "float32"  # float32 | bfloat16 (autocast, GPU)
    threads: int = 0  # torch threads per process (0: leave torch's default)
    max_minutes: float = 0.0  # wall-clock limit of this process's training (0: none): the run
    #                           stops early as if at max_steps (validation, export, checkpoint);
    #                           the schedule still follows max_steps, and a rerun resumes

    @classmethod
    def defaults(cls, **changes: Any) -> dict[str, Any]:
        """A trainer's ``[train]`` defaults: these, with ``changes``."""
        return dataclasses.asdict(dataclasses.replace(cls(), **changes))

    @classmethod
    def keys(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_section(cls, train: dict[str, Any]) -> TrainConfig:
        """The loop's keys of a recipe's ``[train]`` section (the task reads the others)."""
        cfg = cls(**{k: v for k, v in train.items() if k in cls.keys()})
        if cfg.dtype not in ("float32", "bfloat16"):
            raise DataError(f"train.dtype must be float32 or bfloat16, got {cfg.dtype!r}")
        if cfg.device not in ("auto", "cpu", "cuda"):
            raise DataError(f"train.device must be auto, cpu or cuda, got {cfg.device!r}")
        if cfg.max_minutes < 0:
            raise DataError(f"train.max_minutes must be >= 0, got {cfg.max_minutes}")
        return cfg


class TrainTask(abc.ABC):
    """What a stage brings to :func:`fit`: data, model and loss."""

    name: str = "model"  # the progress bar reads "train <name>"
    main_metric: str = "loss"  # logged as the loss; its validation value picks the best weights
    rate_unit: str = "steps"  # log.jsonl reports "<rate_unit>_per_s" (see :meth:`count`)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW
    eps: float = 1e-8  # AdamW
    ddp_kwargs: dict[str, Any] = {}  # extra DistributedDataParallel arguments

    def prepare(self, progress: bool) -> None:
        """Make what the data needs on disk (rank 0 only, before the others start)."""

    @abc.abstractmethod
    def build(self, device: torch.device, rank: int, world: int) -> nn.Module:
        """Open the data and make the model (torch is seeded with the run's seed just before)."""

    @abc.abstractmethod
    def batch(self, split: str, seed: int, index: int) -> Any:
        """This rank's share of global batch ``index`` of ``split`` ("train" or "valid"): a
        pure function of (seed, index). Tensors anywhere inside are moved to the device."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the loss to back-propagate, metrics). Each metric is this rank's share: summed over
        ranks it is the global value (so a rank's mean loss is divided by the world size)."""

    def count(self, batch: Any) -> int:
        """What this rank's batch counts towards the rate (tokens, frames; 1 = steps)."""
        return 1

    def describe(self, model: nn.Module) -> str:
        return f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"

    def history(self) -> dict[str, Any]:
        """Extra entries of the run history (a ``valid_<metric>: []`` entry is filled in)."""
        return {}

    def check_resume(self, history: dict[str, Any]) -> None:
        """Refuse to resume a run made from other data (raise :class:`SpeechLMError`)."""

    def state_tensors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return model.state_dict()

    def load_state_tensors(self, model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(tensors, strict=True)

    def clip_groups(self, model: nn.Module) -> list[list[nn.Parameter]]:
        """Parameter sets whose gradient norms are clipped to ``train.grad_clip`` each on its
        own (the first one's norm is logged): all parameters together by default."""
        return [list(model.parameters())]

    def log_extra(self, batch: Any) -> dict[str, Any]:
        return {}

    @abc.abstractmethod
    def export(self, out: Path, model: nn.Module, step: int, valid: dict[str, float],
               rate: float) -> None:
        """Write the inference stage ``out`` from the best weights so far (rank 0)."""

    def after_step(self, run: Path, model: nn.Module, step: int) -> None:
        """Periodic extra work after validation (rank 0), e.g. audio samples."""

    def close(self) -> None:
        """Release what :meth:`build` opened."""


def main(argv: list[str] | None, prog: str, example: str, load_config, train) -> int:
    """``python -m speechlm.train.<stage> --config RECIPE [--section.key=value ...]`` (also
    what ``torchrun`` starts): parse, train, exit 2 with one line on a user error."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog=prog, description="Train from a recipe TOML; extra "
                                "--section.key=value arguments override the recipe.")
    p.add_argument("--config", help=f"recipe, e.g. {example}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args, extra = p.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        train(load_config(args.config, extra), progress=not args.quiet, recipe=args.config)
    except SpeechLMError as err:
        print(f"speechlm: error: {err}", file=sys.stderr)
        return 2
    return 0


def setup_distributed(device_pref: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process; joins the process group under torchrun."""
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


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of torch's RNG (dropout) for ``step`` on ``rank``."""
    return int(np.random.SeedSequence([seed, step, rank, 7]).generate_state(1)[0])


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor inside (tuples, lists, dicts) moved to ``device``."""
    if device.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a NamedTuple (PhoneBatch)
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def make_optimizer(model: nn.Module, cfg: TrainConfig, task: TrainTask,
                   device: torch.device) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices (and embeddings) only."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                             betas=task.betas, eps=task.eps, fused=device.type == "cuda")


def fit(task: TrainTask, recipe: dict[str, dict], progress: bool = True) -> Path:
    """Run (or resume) training; returns the run directory (``recipe['train']['out']``)."""
    cfg = TrainConfig.from_section(recipe["train"])
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    rank, world, device = setup_distributed(cfg.device)
    if cfg.batch_size % world:
        raise SpeechLMError(f"train.batch_size {cfg.batch_size} must divide by the {world} "
                            "processes")
    out = Path(cfg.out)
    if rank == 0:
        task.prepare(progress)
    if world > 1:
        dist.barrier()
    torch.manual_seed(cfg.seed)
    model = task.build(device, rank, world).to(device)
    opt = make_optimizer(model, cfg, task, device)
    step, history = 0, {"train_loss": [], "valid_loss": [], **task.history()}
    if (out / "state.safetensors").exists():
        try:
            tensors, step, history = load_state(out, opt, device)
            task.load_state_tensors(model, tensors)
        except (RuntimeError, ValueError, KeyError) as err:
            raise SpeechLMError(f"{out / 'state.safetensors'} does not fit this recipe's model "
                                f"({str(err).strip().splitlines()[0]}); choose another "
                                "train.out or remove the old run") from None
        task.check_resume(history)
        if rank == 0:
            log.info("resuming %s at step %d", out, step)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "run.toml", to_toml(recipe))
        log.info("%s: %s, world %d, device %s", task.name, task.describe(model), world, device)
    ddp = (torch.nn.parallel.DistributedDataParallel(model, **task.ddp_kwargs) if world > 1
           else model)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.dtype == "bfloat16"
           else torch.autocast(device.type, enabled=False))

    def reduce(values: dict[str, float]) -> dict[str, float]:
        if world == 1:
            return values
        v = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
        dist.all_reduce(v)
        return dict(zip(values, v.tolist()))

    def evaluate() -> dict[str, float]:
        model.eval()
        sums: dict[str, float] = {}
        with torch.no_grad(), amp:
            for i in range(cfg.eval_batches):
                _, metrics = task.loss(model, to_device(task.batch("valid", cfg.seed + 1, i),
                                                        device))
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v) / cfg.eval_batches
        model.train()
        return reduce(sums)

    bar = tqdm(total=cfg.max_steps, initial=step, desc=f"train {task.name}", unit="step",
               disable=not progress or rank != 0)
    model.train()
    t0, counted = time.perf_counter(), 0
    log_f = (out / "log.jsonl").open("a") if rank == 0 else None
    prefetch = ThreadPoolExecutor(max_workers=1)  # prepares the next batch while this one trains
    timed_out = False

    def out_of_time() -> bool:  # every rank stops at the same step
        over = time.perf_counter() - t0 > cfg.max_minutes * 60
        if world == 1:
            return over
        flag = torch.tensor([float(over)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    try:
        if step < cfg.max_steps:
            upcoming = prefetch.submit(task.batch, "train", cfg.seed, step)
        while step < cfg.max_steps:
            batch = to_device(upcoming.result(), device)
            if step + 1 < cfg.max_steps:
                upcoming = prefetch.submit(task.batch, "train", cfg.seed, step + 1)
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            torch.manual_seed(step_seed(cfg.seed, step, rank))
            with amp:
                loss, metrics = task.loss(ddp, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = [torch.nn.utils.clip_grad_norm_(ps, cfg.grad_clip)
                     for ps in task.clip_groups(model)][0]
            opt.step()
            step += 1
            counted += task.count(batch) * world
            bar.update(1)
            if cfg.max_minutes and not timed_out:
                timed_out = out_of_time()
            last = step == cfg.max_steps or timed_out
            if step % cfg.log_interval == 0 or last:
                m = reduce({k: float(v.detach()) for k, v in metrics.items()})
                rate = counted / (time.perf_counter() - t0)
                history["train_loss"].append([step, round(m[task.main_metric], 5)])
                bar.set_postfix(loss=f"{m[task.main_metric]:.3f}",
                                **{f"{task.rate_unit}_s": f"{rate:.0f}"})
                if log_f:
                    log_f.write(json.dumps({"step": step, **m, "lr": lr,
                                            "grad_norm": float(gnorm),
                                            f"{task.rate_unit}_per_s": rate,
                                            **task.log_extra(batch)}) + "\n")
                    log_f.flush()
            if step % cfg.eval_interval == 0 or last:
                valid = evaluate()
                main = valid[task.main_metric]
                history["valid_loss"].append([step, round(main, 5)])
                for k, v in valid.items():
                    if k != task.main_metric and f"valid_{k}" in history:
                        history[f"valid_{k}"].append([step, round(v, 5)])
                best = history.get("best_valid")
                if rank == 0:
                    log.info("step %d: valid %s", step,
                             ", ".join(f"{k} {v:.4f}" for k, v in valid.items()))
                    if log_f:
                        log_f.write(json.dumps({"step": step, "valid_loss": main,
                                                "valid": valid}) + "\n")
                        log_f.flush()
                    if best is None or main < best[1]:  # model/ keeps the best weights
                        task.export(out / "model", model, step, valid,
                                    counted / (time.perf_counter() - t0))
                        model.train()  # an exporter may have switched it to eval mode
                if best is None or main < best[1]:
                    history["best_valid"] = [step, round(main, 5)]
            if rank == 0:
                task.after_step(out, model, step)
            if step % cfg.ckpt_interval == 0 or last:
                if rank == 0:
                    save_state(out, task.state_tensors(model), opt, step, history)
                if world > 1:
                    dist.barrier()
            if timed_out:
                if rank == 0:
                    log.info("train.max_minutes %g reached at step %d of %d: stopped (a rerun "
                             "resumes)", cfg.max_minutes, step, cfg.max_steps)
                break
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)
        task.close()
        bar.close()
        if log_f:
            log_f.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out


__all__ = ["TrainConfig", "TrainTask", "fit", "make_optimizer", "setup_distributed",
           "step_seed", "to_device"]
