"""A voice's own lookup table of unit spectra, pooled over its *other* utterances.

What a decoder that maps each unit (or each unit in the context of its neighbouring runs) to
one spectrum in the speaker's voice could at best give, measured without a decoder: the table
is the mean log-mel of every run of the unit in the voice's other utterances (leave one
utterance out), so the utterance being resynthesized never lends its own spectra. Copy synthesis
reads it as ``eval resynth --methods copy-voice-means,copy-voice-context``
(:mod:`speechlm.eval.resynth`).

* ``copy-voice-means``: one spectrum per unit (the per-utterance ``copy-unit-means``, whose
  table holds the utterance's own runs, and the more so the more units there are; here none of
  it is the utterance's own, though a small table leaves more units of a large codebook without
  an entry);
* ``copy-voice-context``: one spectrum per (previous run's unit, unit, next run's unit) seen in
  the voice's other utterances, backing off to the unit, then to the voice's mean frame: how
  much of each run's departure from its unit's average its neighbours explain.

A unit the voice's other utterances never show falls back to the voice's mean frame (counted:
``levels``), never to the utterance's own spectrum.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Hashable

import torch

LEVELS = ("context", "unit", "voice")  # what a run's spectrum came from, finest first
EDGE = -1  # the "unit" before the first run and after the last


def runs(ids: list[int]) -> list[tuple[int, int, int]]:
    """``(start, end, unit)`` of each run of equal ids (unit frames, end exclusive)."""
    out, start = [], 0
    for t in range(1, len(ids) + 1):
        if t == len(ids) or ids[t] != ids[start]:
            out.append((start, t, ids[start]))
            start = t
    return out


def run_keys(ids: list[int]) -> list[tuple[int, int, tuple[int, int, int], int]]:
    """``(start, end, (previous unit, unit, next unit), unit)`` of each run; the edges' missing
    neighbours are :data:`EDGE`."""
    rs = runs(ids)
    return [(s, e, (rs[i - 1][2] if i else EDGE, u, rs[i + 1][2] if i + 1 < len(rs) else EDGE), u)
            for i, (s, e, u) in enumerate(rs)]


@dataclass
class _Sums:
    """Sum and count of log-mel frames per key."""

    sums: dict[Hashable, torch.Tensor] = field(default_factory=dict)
    counts: dict[Hashable, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, key: Hashable, frames: torch.Tensor) -> None:
        s = frames.sum(0, dtype=torch.float64)
        self.sums[key] = self.sums[key] + s if key in self.sums else s
        self.counts[key] += len(frames)

    def merge(self, other: _Sums, sign: int = 1) -> None:
        for k, s in other.sums.items():
            self.sums[k] = self.sums[k] + sign * s if k in self.sums else sign * s
            self.counts[k] += sign * other.counts[k]

    def mean(self, key: Hashable, minus: _Sums | None = None) -> torch.Tensor | None:
        """The mean of ``key``'s frames, less those of ``minus``; None without any."""
        n = self.counts.get(key, 0) - (minus.counts.get(key, 0) if minus else 0)
        if n <= 0:
            return None
        s = self.sums[key] - (minus.sums[key] if minus and key in minus.sums else 0)
        return (s / n).float()


class VoiceUnitTable:
    """Log-mel sums per unit and per unit in context over one voice's utterances; the means of
    any one utterance are read with that utterance left out (:meth:`lookup`)."""

    def __init__(self) -> None:
        self.total = _Sums()
        self.own: dict[str, _Sums] = {}
        self.ids: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.own)

    def add(self, name: str, mel: torch.Tensor, ids: torch.Tensor | list[int],
            upsample: int) -> None:
        """Add one utterance: ``mel`` ``[N, n_mels]``, unit ``ids`` (vocoder frames
        ``upsample * t ...`` belong to unit frame ``t``)."""
        if name in self.own:
            raise ValueError(f"utterance {name!r} is in the table already")
        ids = [int(i) for i in ids]
        sums = _Sums()
        for s, e, ctx, u in run_keys(ids):
            a, b = upsample * s, min(upsample * e, len(mel))
            if a >= b:
                continue
            frames = mel[a:b]
            sums.add(("ctx", ctx), frames)
            sums.add(("unit", u), frames)
            sums.add(("voice",), frames)
        self.own[name], self.ids[name] = sums, ids
        self.total.merge(sums)

    def lookup(self, name: str, mel: torch.Tensor, context: bool,
               upsample: int) -> tuple[torch.Tensor, dict[str, int]]:
        """``name``'s log-mel ``mel`` ``[N, n_mels]`` with each run's frames replaced by the
        table's mean for the run's unit (``context``: for the unit between its neighbouring
        runs' units, backing off to the unit) over the voice's *other* utterances, then by the
        voice's mean frame; frames past the units keep their own values. Returns it and the
        frames (log-mel frames) taken from each level of :data:`LEVELS`."""
        if name not in self.own:
            raise KeyError(f"utterance {name!r} is not in the table")
        own = self.own[name]
        out = mel.clone()
        levels = dict.fromkeys(LEVELS, 0)
        fallback = self.total.mean(("voice",), own)
        for s, e, ctx, u in run_keys(self.ids[name]):
            a, b = upsample * s, min(upsample * e, len(mel))
            if a >= b:
                continue
            tries = ([("context", ("ctx", ctx))] if context else []) + [("unit", ("unit", u))]
            for level, key in tries:
                m = self.total.mean(key, own)
                if m is not None:
                    break
            else:
                level, m = "voice", fallback
            if m is None:  # the voice has no other utterance: nothing to look up
                raise ValueError(f"the voice of {name!r} has no other utterance to look up")
            out[a:b] = m.to(out.dtype)
            levels[level] += b - a
        return out, levels
