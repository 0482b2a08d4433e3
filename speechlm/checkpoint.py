"""Stage directories on disk: ``config.json`` + ``model.safetensors``, written atomically.

``config.json`` holds ``kind`` (tokenizer, lm, vocoder, ...), ``format_version``, the stage's
config and ``unit_space``. Tensors live in safetensors, so loading never unpickles anything.
A stage is named by a path or by the name of a model bundled in ``speechlm/pretrained/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from safetensors.torch import load_file, save_file

from speechlm.errors import ModelError
from speechlm.io import current_umask

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

C = TypeVar("C")


def config_from_dict(cls: type[C], d: dict[str, Any], what: str) -> C:
    """The config dataclass ``cls`` from a ``config.json`` section ``d``; a key the dataclass
    does not have is a ValueError naming ``what`` (e.g. "LM config") and every such key."""
    import dataclasses

    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} keys: {', '.join(sorted(unknown))}")
    return cls(**d)


def pretrained_names() -> list[str]:
    """Names of the models bundled with the package."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_NAME).exists())


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A bundled model's name, or a stage directory path -> the directory."""
    p = Path(name_or_path)
    if (p / CONFIG_NAME).exists():
        return p
    bundled = PRETRAINED_DIR / str(name_or_path)
    if "/" not in str(name_or_path) and (bundled / CONFIG_NAME).exists():
        return bundled
    if p.exists():
        raise ModelError(f"{p} is not a model directory (no {CONFIG_NAME})")
    names = ", ".join(pretrained_names()) or "none"
    raise ModelError(f"no model named {str(name_or_path)!r}: not a directory, and not one of "
                     f"the bundled models ({names})")


def save_stage(path: str | os.PathLike, kind: str, config: dict[str, Any],
               tensors: dict[str, torch.Tensor],
               write_extra: Callable[[Path], None] | None = None) -> Path:
    """Write a stage directory atomically (a temp dir beside it, then rename).

    ``write_extra(tmp_dir)``, when given, adds files (e.g. a sub-model) before the rename.
    An existing directory at ``path`` is replaced; callers ask for ``--force`` first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        cfg = {"kind": kind, "format_version": FORMAT_VERSION, **config}
        (tmp / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                  str(tmp / WEIGHTS_NAME))
        mask = current_umask()
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~mask)
        if write_extra is not None:
            write_extra(tmp)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; give the usual mode
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


INT8_SCALE = ".int8_scale"  # suffix of the per-row scale tensor stored beside an int8 weight
INT8_MIN_NUMEL = 4096  # smaller tensors (biases, norms, statistics) stay float16


def half_digest(tensors: dict[str, torch.Tensor], salt: str = "") -> str:
    """The first 8 hex digits of a SHA-256 over ``salt``, then each tensor's name and bytes in
    name order, floating tensors rounded to float16 first (so a float16 copy of the weights
    hashes the same): names networks whose outputs define a unit space (CTC heads)."""
    import hashlib

    h = hashlib.sha256(salt.encode())
    for k in sorted(tensors):
        v = tensors[k]
        h.update(k.encode())
        h.update((v.half() if v.is_floating_point() else v).numpy().tobytes())
    return h.hexdigest()[:8]


def quantize_int8(tensors: dict[str, torch.Tensor],
                  keep: Callable[[str], bool] = lambda name: False,
                  select: Callable[[str], bool] = lambda name: True) -> dict[str, torch.Tensor]:
    """Weights at rest in int8: each floating tensor that ``select(name)`` accepts, of 2+ dims
    and at least :data:`INT8_MIN_NUMEL` elements, becomes int8 with one float32 scale per row
    (its first dim; symmetric, max |w| -> 127), stored as ``name`` + ``name``
    :data:`INT8_SCALE`. Other floating tensors are stored in float16, and those ``keep(name)``
    selects unchanged."""
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if not t.is_floating_point() or keep(name):
            out[name] = t
        elif not select(name) or t.dim() < 2 or t.numel() < INT8_MIN_NUMEL:
            out[name] = t.half()
        else:
            rows = t.float().reshape(t.shape[0], -1)
            scale = rows.abs().amax(1).clamp(min=1e-12) / 127.0
            out[name] = torch.round(rows / scale[:, None]).to(torch.int8).reshape(t.shape)
            out[name + INT8_SCALE] = scale
    return out


def dequantize_int8(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Undo :func:`quantize_int8`: int8 weights with a scale -> float32 (others unchanged)."""
    out = {k: v for k, v in tensors.items() if not k.endswith(INT8_SCALE)}
    for name, t in out.items():
        scale = tensors.get(name + INT8_SCALE)
        if scale is not None:
            if t.dtype != torch.int8 or scale.numel() != t.shape[0]:
                raise ModelError(f"{name}: an int8 scale of {scale.numel()} rows for a "
                                 f"{t.dtype} tensor of shape {tuple(t.shape)}")
            out[name] = (t.float().reshape(t.shape[0], -1) * scale.float()[:, None]) \
                .reshape(t.shape)
    return out


def load_stage(name_or_path: str | os.PathLike,
               kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
    """Read a stage directory; check its kind and format version.

    Returns:
        (config, tensors, directory)
    """
    path = resolve(name_or_path)
    try:
        cfg = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelError(f"{path / CONFIG_NAME} is not valid JSON ({err.msg})") from None
    if cfg.get("kind") != kind:
        raise ModelError(f"{path} holds a {cfg.get('kind')!r} model, expected a {kind!r}")
    if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{path} has format version {cfg['format_version']}, newer than this "
                         f"speechlm reads ({FORMAT_VERSION}); upgrade speechlm")
    weights = path / WEIGHTS_NAME
    if not weights.exists():
        raise ModelError(f"{path} has no {WEIGHTS_NAME}")
    try:
        tensors = load_file(str(weights))
    except Exception as err:
        raise ModelError(f"cannot read {weights}: {str(err).splitlines()[0]}") from None
    if any(k.endswith(INT8_SCALE) for k in tensors):
        tensors = dequantize_int8(tensors)
    return cfg, tensors, path


def load_network(name_or_path: str | os.PathLike, kind: str, config_cls: type,
                 network_cls: Callable[[Any], torch.nn.Module]
                 ) -> tuple[torch.nn.Module, dict[str, Any], Path]:
    """A sub-model stage directory (a waveform stage, a speaker encoder, a contour model):
    ``network_cls(config_cls.from_dict(config["model"]))`` with its weights loaded strictly in
    float32. Returns (network, config, directory); a bad config or weights that do not fit it
    is a :class:`ModelError` naming the directory."""
    cfg, tensors, path = load_stage(name_or_path, kind)
    try:
        net_cfg = config_cls.from_dict(cfg["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{path}: bad {kind} config ({err})") from None
    net = network_cls(net_cfg)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in tensors.items()}, strict=True)
    except RuntimeError as err:
        raise ModelError(f"{path}: weights do not fit the config "
                         f"({str(err).splitlines()[0]})") from None
    return net, cfg, path


def save_network(path: str | os.PathLike, kind: str, network: torch.nn.Module,
                 config: dict[str, Any], half: bool = False) -> Path:
    """Write a sub-model stage directory: ``config`` (with ``stored_dtype``) and the network's
    weights, floating ones in float16 when ``half``."""
    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
          for k, v in network.state_dict().items()}
    return save_stage(path, kind, {**config, "stored_dtype": "float16" if half else "float32"},
                      sd)
