""":func:`load_ssl_model`: recognise a checkpoint's format and load it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torchaudio.models import Wav2Vec2Model

from speechlm.errors import ModelError
from speechlm.ssl.common import CONFIG_NAME, SSLInfo
from speechlm.ssl.fairseq import load_fairseq
from speechlm.ssl.files import read_json
from speechlm.ssl.huggingface import load_hf
from speechlm.ssl.native import load_native

_LG = logging.getLogger(__name__)


def load_ssl_model(path: str | os.PathLike) -> tuple[Wav2Vec2Model, SSLInfo]:
    """Load a HuBERT / wav2vec 2.0-architecture encoder from a local checkpoint.

    Args:
        path: A Hugging Face model directory (``config.json`` + ``model.safetensors`` or
            ``pytorch_model.bin``), a fairseq checkpoint file (``.pt``), or a directory written
            by :func:`save_ssl_model`.

    Returns:
        ``(model, info)``: the torchaudio model on CPU in eval mode (float32, no heads) and an
        :class:`SSLInfo` describing it.

    Raises:
        ModelError: The path is missing, its format is unknown or unsupported, or the weights
            do not match the config (missing / unexpected keys, shape mismatch).
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such file or directory")
    if p.is_dir():
        config_path = p / CONFIG_NAME
        if not config_path.is_file():
            hint = ""
            checkpoints = sorted(q.name for q in p.glob("*.pt"))
            if checkpoints:
                hint = f"; for a fairseq checkpoint pass the file, e.g. {p / checkpoints[0]}"
            raise ModelError(f"{p}: not a model directory: {CONFIG_NAME} is missing{hint}")
        cfg = read_json(config_path)
        if "kind" in cfg:
            model, info = load_native(p, cfg)
        elif "model_type" in cfg:
            model, info = load_hf(p, cfg)
        else:
            raise ModelError(f"{p}: unknown model format: {CONFIG_NAME} has neither 'kind' "
                             f"(speechlm) nor 'model_type' (Hugging Face)")
    elif p.suffix in (".safetensors", ".json"):
        raise ModelError(f"{p}: pass the model directory, not one of its files")
    else:
        model, info = load_fairseq(p)
    _LG.debug("loaded %s SSL encoder from %s: %d layers, dim %d, normalize_waveform=%s",
              info.source_format, p, info.num_layers, info.dim, info.normalize_waveform)
    return model, info
