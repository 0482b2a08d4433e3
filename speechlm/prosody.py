"""Intonation for the drawn-F0 path: frame units -> the shape of an utterance's F0 contour.

The unit vocoder, given no F0 (every continuation), draws a log-F0 contour from per-frame
distributions its first pass predicts from the units around each frame, about 0.6 s either
side (its conv stack's reach), and then decodes again conditioned on that contour z-scored
over the utterance. Spoken that way, a real voice lost 0.18 more of its words than with her
own F0, and most of them to the drawn contour's *pitch shape* (README, "Where the drawn-F0
path loses words"). :class:`ContourNet` predicts that shape from the whole utterance instead:
a bidirectional GRU over the frame units and each frame's place in the utterance gives, for
every vocoder frame (two per unit frame), a distribution over the utterance's z-scored log F0
(``bins`` bins over ``[-Z_RANGE, Z_RANGE]``, the vocoder's own binning, so
:func:`speechlm.vocoder.sample_f0_contour` draws from it). Only the shape is learned: the level
and range come from the reference voice, and the voicing stays the vocoder's.

:class:`ContourModel` is the loadable stage (``kind: "contour"``, safetensors + JSON), kept in
a vocoder's directory as ``contour/`` (:meth:`speechlm.vocoder.Vocoder.use_contour`); it is
trained by ``speechlm train vocoder --config configs/vocoder/contour-cpu.toml``
(:mod:`speechlm.train.contour`).

A model trained with ``known_prefix`` also reads the F0 of the utterance's first frames where it
is known (a continuation's prompt: :meth:`ContourModel.logits` ``known_f0``): each unit frame
gets the z-scored log F0 of its two vocoder frames, their voicing and a known flag, so the drawn
shape after the prompt carries on the prompt's intonation instead of starting afresh. The prefix
is z-scored over its own voiced frames, and so is the target then (in training too): the output
is placed at the voice's level and range, which come from the prompt.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from speechlm import checkpoint
from speechlm.errors import ModelError

Z_RANGE = 3.5  # the bins span the z-scored log F0 over [-Z_RANGE, Z_RANGE] (the vocoder's)
UPSAMPLE = 2  # vocoder frames per unit frame (10 ms against 20 ms)
MIN_VOICED = 2  # a track with fewer voiced frames has no shape (nothing is z-scored)
MIN_PREFIX_VOICED = 20  # a known prefix with fewer voiced frames (0.2 s) is not used
KNOWN_FEATURES = 2 * UPSAMPLE + 1  # per unit frame: z and voicing of each vocoder frame, known


def z_scored(f0: np.ndarray, stats_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An F0 track (Hz, 0 unvoiced) -> (log F0 z-scored over the voiced frames among its first
    ``stats_frames`` (None: all), voiced mask); the statistics of
    :func:`speechlm.vocoder.f0_conditioning` (spread at least 0.02). Fewer than
    :data:`MIN_VOICED` voiced frames there: all zeros, nothing voiced."""
    f0 = np.asarray(f0, dtype=np.float32)
    voiced = f0 > 0
    lf0 = np.log(np.maximum(f0, 1.0))
    z = np.zeros_like(lf0)
    basis = voiced[: len(f0) if stats_frames is None else stats_frames]
    if basis.sum() >= MIN_VOICED:
        sel = lf0[: len(basis)][basis]
        mu, sd = sel.mean(), max(float(sel.std(ddof=1)), 0.02)
        z = np.where(voiced, (lf0 - mu) / sd, 0.0)
    else:
        voiced = np.zeros_like(voiced)
    return z.astype(np.float32), voiced


def known_features(z: torch.Tensor, voiced: torch.Tensor, known: torch.Tensor,
                   T: int) -> torch.Tensor:
    """The known-prefix input ``[B, T, KNOWN_FEATURES]`` from vocoder-frame ``z`` and ``voiced``
    ``[B, >= 2T]`` and each row's known unit frames ``known`` ``[B]``: for each unit frame the
    z of its two vocoder frames (0 where unvoiced or unknown), their voicing (1 voiced and
    known) and whether it is known."""
    B = z.shape[0]
    k = (torch.arange(T)[None] < known[:, None]).float()  # [B, T]
    v = voiced[:, : UPSAMPLE * T].float().reshape(B, T, UPSAMPLE) * k[..., None]
    zz = z[:, : UPSAMPLE * T].float().reshape(B, T, UPSAMPLE) * v
    return torch.cat([zz, v, k[..., None]], dim=-1)


@dataclasses.dataclass(frozen=True)
class ContourConfig:
    n_units: int  # K of the unit space
    unit_space: str  # the tokenizer's unit space id; other spaces are refused
    embed: int = 64  # unit embedding size
    hidden: int = 128  # GRU width, each direction
    layers: int = 2  # stacked bidirectional GRU layers
    bins: int = 64  # z-scored log-F0 bins over [-Z_RANGE, Z_RANGE]
    dropout: float = 0.1  # between GRU layers and before the head
    known_prefix: bool = False  # also reads a known F0 prefix (a continuation's prompt)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContourConfig:
        return checkpoint.config_from_dict(cls, d, "contour config")


def place_features(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """Each frame's place in its utterance ``[B, T, 3]``: the share of it gone, the share to
    come (both 0 past the end) and the utterance's log length in seconds at 50 frames/s."""
    t = torch.arange(T, dtype=torch.float32)[None]  # [1, T]
    n = lengths.float()[:, None].clamp(min=1)  # [B, 1]
    inside = (t < n).float()
    gone = t / n * inside
    come = (n - 1 - t).clamp(min=0) / n * inside
    size = torch.log(n / 50.0).expand(-1, T) * inside
    return torch.stack([gone, come, size], dim=-1)


class ContourNet(nn.Module):
    """Frame units ``[B, T]`` (+ lengths ``[B]``, and with ``known_prefix`` the known-prefix
    input ``[B, T, KNOWN_FEATURES]``, None: nothing known) -> log-F0 shape logits
    ``[B, 2T, bins]``."""

    def __init__(self, cfg: ContourConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_units, cfg.embed)
        self.inp = nn.Linear(cfg.embed + 3 + (KNOWN_FEATURES if cfg.known_prefix else 0),
                             cfg.hidden)
        self.rnn = nn.GRU(cfg.hidden, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                          bidirectional=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.hidden, UPSAMPLE * cfg.bins)

    def forward(self, units: torch.Tensor, lengths: torch.Tensor,
                known: torch.Tensor | None = None) -> torch.Tensor:
        B, T = units.shape
        parts = [self.embed(units), place_features(lengths, T).to(units.device)]
        if self.cfg.known_prefix:
            parts.append(torch.zeros(B, T, KNOWN_FEATURES, device=units.device)
                         if known is None else known.to(units.device))
        x = torch.cat(parts, -1)
        x = torch.tanh(self.inp(x))  # [B, T, H]
        packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True,
                                      enforce_sorted=False)
        h, _ = self.rnn(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=T)  # [B, T, 2H]
        y = self.head(self.drop(h))  # [B, T, 2 * bins]
        return y.reshape(B, UPSAMPLE * T, self.cfg.bins)


class ContourModel:
    """The contour stage as a loadable directory: :class:`ContourNet` + its config."""

    kind = "contour"

    def __init__(self, model: ContourNet, training: dict[str, Any] | None = None):
        self.model = model.eval()
        self.training = dict(training or {})

    @property
    def unit_space(self) -> str:
        return self.model.cfg.unit_space

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> ContourModel:
        model, cfg, _ = checkpoint.load_network(name_or_path, cls.kind, ContourConfig,
                                                ContourNet)
        return cls(model, cfg.get("training"))

    def save(self, path: str | os.PathLike, half: bool = False) -> os.PathLike:
        config = {"model": self.model.cfg.to_dict(), "z_range": Z_RANGE,
                  "training": self.training}
        return checkpoint.save_network(path, self.kind, self.model, config, half)

    @property
    def reads_prefix(self) -> bool:
        """Whether :meth:`logits` reads a known F0 prefix (trained with ``known_prefix``)."""
        return bool(self.model.cfg.known_prefix)

    @torch.inference_mode()
    def logits(self, units: torch.Tensor, known_f0: np.ndarray | None = None) -> torch.Tensor:
        """Frame-rate unit ids ``[T]`` -> logits ``[2T, bins]`` of each vocoder frame's
        z-scored log F0 (the utterance's voiced frames have mean 0 and spread 1).

        ``known_f0``: the F0 (Hz, 0 unvoiced) of the first vocoder frames, where known (a
        continuation's prompt); read by a model with :attr:`reads_prefix` (ignored by others,
        and when it has fewer than :data:`MIN_PREFIX_VOICED` voiced frames), and then the
        shape is z-scored over the prefix's voiced frames."""
        ids = torch.as_tensor(units).long()
        if ids.ndim != 1 or len(ids) == 0:
            raise ModelError(f"the contour model reads one non-empty unit sequence, got shape "
                             f"{tuple(ids.shape)}")
        if int(ids.min()) < 0 or int(ids.max()) >= self.model.cfg.n_units:
            raise ModelError(f"unit ids must be in [0, {self.model.cfg.n_units})")
        known = None
        if known_f0 is not None and self.reads_prefix:
            f0 = np.asarray(known_f0, dtype=np.float64).reshape(-1)[: UPSAMPLE * len(ids)]
            k = len(f0) // UPSAMPLE
            z, voiced = z_scored(f0[: UPSAMPLE * k])
            if voiced.sum() >= MIN_PREFIX_VOICED:
                pad = UPSAMPLE * len(ids) - len(z)
                known = known_features(torch.from_numpy(np.pad(z, (0, pad)))[None],
                                       torch.from_numpy(np.pad(voiced, (0, pad)))[None],
                                       torch.tensor([k]), len(ids))
        return self.model(ids[None], torch.tensor([len(ids)]), known)[0]


__all__ = ["KNOWN_FEATURES", "MIN_PREFIX_VOICED", "MIN_VOICED", "UPSAMPLE", "Z_RANGE",
           "ContourConfig", "ContourModel", "ContourNet", "known_features", "place_features",
           "z_scored"]
