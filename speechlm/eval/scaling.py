"""A scaling table of LM training runs: validation loss against training compute.

Reads finished (or running) LM run directories, each ``run.toml`` + ``log.jsonl`` as
:func:`speechlm.train.loop.fit` writes them, and gives per run: the model's parameters (all, and
without the embedding, which Kaplan et al. leave out of compute), the tokens it trained on, its
compute ``6 N D`` (N non-embedding parameters, D tokens), the wall time its own log measured,
and its validation loss curve. ``speechlm eval scaling RUN... --figure F.png`` draws the curves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import tomllib
import torch

from speechlm.errors import DataError, ModelError
from speechlm.io import atomic_path
from speechlm.lm import LMConfig, UnitLM


def read_run(run: str | os.PathLike) -> dict:
    """One run's sizes, compute and validation curve."""
    run = Path(run)
    try:
        recipe = tomllib.loads((run / "run.toml").read_text())
        records = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines() if ln]
        mcfg = json.loads((run / "model" / "config.json").read_text())["model"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{run} is not a finished LM run ({err})") from None
    cfg = LMConfig.from_dict(mcfg)
    with torch.no_grad():
        model = UnitLM(cfg)
    n_all = model.num_params()
    n_embed = model.embed.weight.numel()
    t = recipe["train"]
    per_step = int(t["batch_size"]) * cfg.block_size
    valid = [(r["step"], r["valid_loss"]) for r in records if "valid_loss" in r]
    rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    if not valid or not rates:
        raise DataError(f"{run}/log.jsonl has no validation or rate records yet")
    steps = max(s for s, _ in valid)
    n = n_all - n_embed
    return {
        "run": str(run), "layers": cfg.n_layer, "width": cfg.n_embd, "heads": cfg.n_head,
        "text": bool(cfg.text_vocab), "params": n_all, "params_non_embedding": n,
        "steps": steps, "tokens": steps * per_step,
        "flops": 6.0 * n * steps * per_step,
        "train_minutes": round(steps * per_step / rates[-1] / 60, 1),
        "tokens_per_s": round(rates[-1]),
        "valid_loss": round(min(v for _, v in valid), 4),
        "curve": [[s, round(v, 4), 6.0 * n * s * per_step] for s, v in valid],
        "lr": t.get("lr"), "batch_size": t["batch_size"], "block_size": cfg.block_size,
        "data": recipe.get("data", {}).get("mix_dir") if cfg.text_vocab
        else recipe.get("data", {}).get("units_dir"),
    }


def scaling_report(runs: list[str | os.PathLike]) -> dict:
    """The runs, smallest compute first."""
    rows = sorted((read_run(r) for r in runs), key=lambda r: (r["flops"], r["run"]))
    return {"runs": rows, "compute": "6 x non-embedding parameters x training tokens"}


def _run_names(runs: list[dict]) -> list[str]:
    """Each run's directory name, with its parent where two runs share a name."""
    names = [Path(r["run"]).name for r in runs]
    return [str(Path(*Path(r["run"]).parts[-2:])) if names.count(n) > 1 else n
            for r, n in zip(runs, names)]


def scaling_markdown(report: dict) -> str:
    lines = ["| run | data | layers x width | text | params (non-emb.) | steps | tokens | compute "
             "(PF) | minutes | tokens/s | best valid loss |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r, name in zip(report["runs"], _run_names(report["runs"])):
        data = Path(r["data"]).name if r.get("data") else "-"
        lines.append(f"| {name} | {data} | {r['layers']} x {r['width']} | "
                     f"{'yes' if r['text'] else 'no'} | {r['params'] / 1e6:.2f}M "
                     f"({r['params_non_embedding'] / 1e6:.2f}M) | {r['steps']} | "
                     f"{r['tokens'] / 1e6:.2f}M | {r['flops'] / 1e15:.3f} | "
                     f"{r['train_minutes']} | {r['tokens_per_s']} | {r['valid_loss']:.4f} |")
    return "\n".join(lines) + "\n"


def plot_scaling(path: str | os.PathLike, report: dict) -> None:
    """Validation loss against compute, one curve per run, written atomically as a PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ModelError("plotting needs matplotlib; install it with pip install -e '.[eval]'"
                         ) from e
    fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for r, name in zip(report["runs"], _run_names(report["runs"])):
        c = np.asarray(r["curve"], dtype=float)
        label = (f"{name}: {r['layers']}x{r['width']} "
                 f"({r['params_non_embedding'] / 1e6:.1f}M)"
                 f"{' + text' if r['text'] else ''}")
        ax.plot(c[:, 2] / 1e15, c[:, 1], marker="o", ms=3, label=label,
                ls="--" if r["text"] else "-")
    ax.set_xscale("log")
    ax.set_xlabel("training compute, PFLOP (6 N D)")
    ax.set_ylabel("validation loss (nats per unit)")
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
