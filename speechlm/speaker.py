"""A speaker encoder trained across the world corpus's voice identities.

The unit vocoder needs a voice vector that places a voice it never heard near the voices it
did. The reference encoder of the bundled vocoder learned from six speakers. This one learns a
speaker-verification space over the 200+ identities of the world corpus (:mod:`speechlm.data`):
log-mel (the vocoder's, 10 ms) -> dilated 1-D convolutions -> attentive statistics pooling ->
a unit-length ``dim`` vector, trained with an additive angular margin softmax (ArcFace's
``cos(theta + m)``) over the training identities, on references passed through the corpus's
augmentation (rooms, noise, babble, EQ, band limits, codecs) so that a phone recording still
lands near its voice (:mod:`speechlm.train.speaker`). Resemblyzer stays the judge only.

:class:`SpeakerModel` is the loadable stage (``kind: "speaker"``, safetensors + JSON);
``embed(wav)`` gives the vector, and cosine similarity compares two.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechlm import checkpoint
from speechlm.audio import SAMPLE_RATE, as_mono
from speechlm.errors import AudioError
from speechlm.mel import MelSpectrogram

MIN_SECONDS = 0.5  # the shortest reference embed() takes


@dataclasses.dataclass(frozen=True)
class SpeakerConfig:
    n_mels: int = 80
    channels: int = 256
    blocks: int = 4
    dim: int = 192  # embedding size
    sample_rate: int = SAMPLE_RATE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeakerConfig:
        return checkpoint.config_from_dict(cls, d, "speaker config")


class _Block(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, 3, dilation=dilation, padding=dilation)
        self.norm = nn.BatchNorm1d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.norm(self.conv(x)))


class SpeakerNet(nn.Module):
    """log-mel ``[B, N, M]`` -> unit vectors ``[B, dim]``."""

    def __init__(self, cfg: SpeakerConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.inp = nn.Sequential(nn.Conv1d(cfg.n_mels, c, 5, padding=2), nn.ReLU(),
                                 nn.BatchNorm1d(c))
        self.blocks = nn.ModuleList(_Block(c, 2 ** (i % 4)) for i in range(cfg.blocks))
        self.mix = nn.Conv1d(c * cfg.blocks, 3 * c, 1)
        self.attn = nn.Sequential(nn.Conv1d(3 * c, 128, 1), nn.Tanh(), nn.Conv1d(128, 3 * c, 1))
        self.out = nn.Sequential(nn.BatchNorm1d(6 * c), nn.Linear(6 * c, cfg.dim))
        self.register_buffer("mel_mean", torch.zeros(cfg.n_mels))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.inp((mel - self.mel_mean).transpose(1, 2))
        outs = []
        for b in self.blocks:
            x = b(x)
            outs.append(x)
        h = F.relu(self.mix(torch.cat(outs, dim=1)))  # [B, 3C, N]
        w = torch.softmax(self.attn(h), dim=2)  # attention over frames, per channel
        mu = (h * w).sum(2)
        sd = ((h * h * w).sum(2) - mu * mu).clamp(min=1e-5).sqrt()
        return F.normalize(self.out(torch.cat([mu, sd], dim=1)), dim=1)


class SpeakerModel:
    """The speaker encoder as a loadable stage directory."""

    kind = "speaker"

    def __init__(self, model: SpeakerNet, training: dict[str, Any] | None = None):
        self.model = model.eval()
        self.training = dict(training or {})
        self.mel = MelSpectrogram(model.cfg.n_mels)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> SpeakerModel:
        model, cfg, _ = checkpoint.load_network(name_or_path, cls.kind, SpeakerConfig,
                                                SpeakerNet)
        return cls(model, cfg.get("training"))

    def save(self, path: str | os.PathLike, half: bool = False) -> os.PathLike:
        config = {"model": self.model.cfg.to_dict(), "training": self.training}
        return checkpoint.save_network(path, self.kind, self.model, config, half)

    @torch.inference_mode()
    def embed(self, wav: torch.Tensor | np.ndarray, what: str = "the reference") -> torch.Tensor:
        """A 16 kHz recording ``[T]`` -> its unit-length voice vector ``[dim]``."""
        x = as_mono(torch.as_tensor(np.asarray(wav, dtype=np.float32)), what)
        if x.numel() < MIN_SECONDS * SAMPLE_RATE:
            raise AudioError(f"{what} is {x.numel() / SAMPLE_RATE:.2f} s long: a voice needs at "
                             f"least {MIN_SECONDS} s")
        return self.model(self.mel(x[None]))[0]

    def similarity(self, a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
        """Cosine similarity of the voices of two recordings."""
        return float(self.embed(a) @ self.embed(b))


__all__ = ["SpeakerConfig", "SpeakerModel", "SpeakerNet"]
