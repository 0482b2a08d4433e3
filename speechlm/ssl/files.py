"""Reading and atomically writing checkpoint files (JSON, safetensors, ``torch.load``)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from speechlm.errors import ModelError
from speechlm.ssl.common import CONFIG_NAME, one_line

# --------------------------------------------------------------------------------------------
# Reading


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; :class:`ModelError` if unreadable or not an object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path}: unreadable JSON ({one_line(err)})") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return obj


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on CPU."""
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except (OSError, safetensors.SafetensorError) as err:
        raise ModelError(f"{path}: unreadable safetensors file ({one_line(err)})") from None


def torch_load(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "weights_only" in text or "Weights only" in text:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise ModelError(
                f"{path}: refusing to unpickle a non-tensor object{what}: checkpoints are loaded "
                f"with torch.load(weights_only=True), which this file needs arbitrary code for "
                f"(old fairseq checkpoints pickle an argparse.Namespace); convert it to Hugging "
                f"Face format (config.json + model.safetensors) and load that directory"
            ) from None
        raise ModelError(f"{path}: unreadable PyTorch checkpoint ({one_line(err)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
        raise ModelError(f"{path}: unreadable PyTorch checkpoint ({one_line(err)})") from None


def tensor_dict(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """``obj`` as a state dict; :class:`ModelError` unless it maps names to tensors."""
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ModelError(f"{where}: expected a state dict mapping names to tensors")
    return dict(obj)


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a pickled one (``pytorch_model.bin``)."""
    if path.name.endswith(".safetensors"):
        return load_safetensors(path)
    return tensor_dict(torch_load(path), str(path))


# --------------------------------------------------------------------------------------------
# Writing


def write_dir_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Fill a temporary directory beside ``target`` with ``write``, then rename it to ``target``.

    An existing empty directory or model directory (one with ``config.json``) is replaced.
    """
    if target.exists():
        if not target.is_dir():
            raise ModelError(f"{target}: exists and is not a directory")
        if any(target.iterdir()) and not (target / CONFIG_NAME).is_file():
            raise ModelError(f"{target}: refusing to replace a non-empty directory that "
                             f"holds no {CONFIG_NAME}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o755)
        if target.exists():
            old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except OSError:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_file_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary file beside ``target``, then rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp_name))
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, with all-integer lists kept on one line."""
    text = json.dumps(obj, indent=2)
    # Put all-integer lists such as conv layer triples on one line (JSON strings hold no
    # raw newlines, so only indented lists match).
    text = re.sub(r"\[\n\s*(-?\d+(?:,\n\s*-?\d+)*)\n\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    path.write_text(text + "\n", encoding="utf-8")


def save_safetensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write ``tensors`` (moved to CPU, made contiguous) as a safetensors file, with the usual
    file mode (safetensors 0.8 leaves its files 0600: unreadable to other users)."""
    from speechlm.io import current_umask

    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    safetensors.torch.save_file(data, str(path), metadata={"format": "pt"})
    os.chmod(path, 0o666 & ~current_umask())
