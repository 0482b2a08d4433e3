"""speechlm-native format: ``config.json`` with ``{"kind": "ssl_encoder", "format_version": 1,
"arch": {...}}`` and ``model.safetensors`` holding the torchaudio model's ``state_dict``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torchaudio.models import Wav2Vec2Model

from speechlm.errors import ModelError
from speechlm.ssl.common import (
    CONFIG_NAME,
    FORMAT_VERSION,
    KIND,
    WEIGHTS_NAME,
    SSLInfo,
    arch_to_json,
    brief,
    build_and_load,
    check_arch,
    expected_shapes,
    make_info,
)
from speechlm.ssl.files import load_safetensors, save_safetensors, write_dir_atomic, write_json

_LG = logging.getLogger(__name__)


def load_native(directory: Path, cfg: dict[str, Any]) -> tuple[Wav2Vec2Model, SSLInfo]:
    """Load a directory written by :func:`save_ssl_model` whose ``config.json`` is ``cfg``."""
    where = str(directory)
    if cfg.get("kind") != KIND:
        raise ModelError(f"{where}: config.json describes a {cfg.get('kind')!r} model, "
                         f"not an {KIND!r}")
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{where}: unsupported format_version {version!r} "
                         f"(this speechlm reads version {FORMAT_VERSION})")
    arch = check_arch(cfg.get("arch"), where)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelError(f"{where}: {WEIGHTS_NAME} is missing")
    model = build_and_load(arch, load_safetensors(weights), where)
    return model, make_info("speechlm", arch, cfg.get("normalize_waveform"))


def save_ssl_model(model: Wav2Vec2Model, arch: Mapping[str, Any], path: str | os.PathLike, *,
                   normalize_waveform: bool | None = None) -> None:
    """Write ``model`` in the speechlm-native format, atomically.

    The directory gets ``config.json`` (``{"kind": "ssl_encoder", "format_version": 1,
    "arch": arch, "normalize_waveform": ...}``) and ``model.safetensors`` with
    ``model.state_dict()``. It is written into a temporary directory beside ``path`` and then
    renamed, so readers never see a half-written model.

    Args:
        model: The torchaudio model.
        arch: Keyword arguments of :func:`torchaudio.models.wav2vec2_model` that build a model
            with exactly ``model``'s weights (e.g. ``SSLInfo.arch``).
        path: Target directory; an existing model directory there is replaced.
        normalize_waveform: Stored for :attr:`SSLInfo.normalize_waveform`; ``None`` means
            "derive from ``arch``" (true for a ``layer_norm`` feature extractor).

    Raises:
        ModelError: ``arch`` is invalid or does not match the model's weights, or ``path``
            is a file or a non-empty directory that is not a model directory.
    """
    target = Path(path)
    where = str(target)
    arch = check_arch(arch, where)
    shapes = expected_shapes(arch, where)
    state = model.state_dict()
    missing = [k for k in shapes if k not in state]
    unexpected = [k for k in state if k not in shapes]
    if missing or unexpected:
        raise ModelError(f"{where}: the model does not match arch: missing "
                         f"{brief(missing) or 'none'}; unexpected {brief(unexpected) or 'none'}")
    for key, shape in shapes.items():
        if state[key].shape != shape:
            raise ModelError(f"{where}: shape mismatch for {key}: model has "
                             f"{list(state[key].shape)}, arch implies {list(shape)}")
    config: dict[str, Any] = {"kind": KIND, "format_version": FORMAT_VERSION,
                              "arch": arch_to_json(arch)}
    if normalize_waveform is not None:
        config["normalize_waveform"] = bool(normalize_waveform)

    def write(tmp: Path) -> None:
        save_safetensors(tmp / WEIGHTS_NAME, state)
        write_json(tmp / CONFIG_NAME, config)

    write_dir_atomic(target, write)
    _LG.info("saved SSL encoder to %s", target)
