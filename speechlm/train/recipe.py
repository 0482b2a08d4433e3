"""What the trainers (LM, vocoder, encoder) share besides the loop: TOML recipes with
``--section.key=value`` overrides, the cosine learning-rate schedule, and the resumable training
state."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import tomllib
import torch
from safetensors.torch import load_file, save_file

from speechlm.errors import DataError
from speechlm.io import atomic_path, write_json_atomic


def parse_value(text: str) -> Any:
    """An override value parsed as TOML (``3``, ``1e-3``, ``true``, ``[1, 2]``), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def read_recipe(path: str | os.PathLike | None, overrides: list[str],
                cfg: dict[str, dict]) -> dict[str, dict]:
    """Update ``cfg`` (section -> defaults) from a TOML recipe, then from ``--section.key=value``
    overrides. Unknown sections are refused here; unknown keys are the caller's to check."""
    names = ", ".join(cfg)
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DataError(f"config not found: {p}")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as err:
            raise DataError(f"{p}: invalid TOML ({err})") from None
        for section, values in raw.items():
            if section not in cfg:
                raise DataError(f"{p}: unknown section [{section}] ({names})")
            cfg[section].update(values)
    for ov in overrides:
        key, sep, value = ov.removeprefix("--").partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in cfg:
            raise DataError(f"override {ov!r}: expected --section.key=value with section one of "
                            f"{names}")
        cfg[section][name] = parse_value(value)
    return cfg


def to_toml(cfg: dict[str, dict]) -> str:
    """The resolved recipe as TOML (``run.toml``)."""
    lines = []
    for section, values in cfg.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


VOCODER_KINDS = ("unit", "waveform", "contour")  # what speechlm train vocoder trains


def vocoder_recipe_kind(path: str | os.PathLike | None, overrides: list[str] = ()) -> str:
    """A vocoder recipe's ``model.kind`` (from the TOML at ``path``, then the ``--model.kind``
    override): unit (the unit vocoder, the default), waveform (the harmonic-plus-noise stage,
    :mod:`speechlm.train.waveform`) or contour (the drawn-F0 path's intonation model,
    :mod:`speechlm.train.contour`)."""
    raw = read_recipe(path, [o for o in overrides if o.removeprefix("--").startswith("model.")],
                      {"data": {}, "model": {}, "train": {}})
    kind = raw["model"].get("kind", "unit")
    if kind not in VOCODER_KINDS:
        raise DataError(f"model.kind {kind!r}: expected unit (the unit vocoder), waveform or "
                        "contour")
    return kind


def load_recipe(path: str | os.PathLike | None, overrides: list[str],
                defaults: dict[str, dict[str, Any]],
                model_keys: set[str] | None = None) -> dict[str, dict]:
    """A trainer's recipe: ``defaults`` (section -> key -> default) updated from the TOML at
    ``path`` and the overrides. Unknown sections and keys are refused; ``model_keys``, when
    given, are the keys the ``[model]`` section may hold (whatever its defaults)."""
    cfg = read_recipe(path, list(overrides), {s: dict(d) for s, d in defaults.items()})
    unknown = []
    for section, d in defaults.items():
        allowed = model_keys if section == "model" and model_keys is not None else set(d)
        unknown += [f"{section}.{k}" for k in set(cfg[section]) - allowed]
    if unknown:
        raise DataError(f"unknown config keys: {', '.join(sorted(unknown))}")
    return cfg


def lr_at(step: int, t: Any) -> float:
    """Linear warm-up to ``t.lr``, then cosine decay to ``t.min_lr`` at ``t.max_steps``
    (``t``: a :class:`speechlm.train.loop.TrainConfig`)."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    frac = (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


def save_state(out: Path, model_tensors: dict[str, torch.Tensor], opt: torch.optim.Optimizer,
               step: int, history: dict) -> None:
    """Write ``out/state.safetensors`` (model + optimizer tensors, step, history) atomically,
    and ``out/state.json`` for people."""
    tensors = {f"model.{k}": v for k, v in model_tensors.items()}
    sd = opt.state_dict()
    for i, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    meta = {"step": str(step), "param_groups": json.dumps(sd["param_groups"]),
            "history": json.dumps(history)}
    with atomic_path(out / "state.safetensors") as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                  metadata=meta)
    write_json_atomic(out / "state.json", {"step": step, **history})


def load_state(out: Path, opt: torch.optim.Optimizer, device: torch.device | str = "cpu"
               ) -> tuple[dict[str, torch.Tensor], int, dict]:
    """Read ``out/state.safetensors``: restore ``opt`` and return (model tensors, step,
    history); the caller loads the model tensors (strictly)."""
    from safetensors import safe_open

    path = out / "state.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path), device=str(device))
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v.cpu() if name == "step" else v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return model, int(meta["step"]), json.loads(meta["history"])
