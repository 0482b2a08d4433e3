"""Values passed between stages: small frozen dataclasses with tensors inside."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class Units:
    """A sequence of discrete speech units.

    Attributes:
        ids: ``[T]`` int64 unit ids in ``[0, n_units)``.
        frame_rate: frames per second of the (non-deduplicated) unit stream.
        n_units: size of the unit vocabulary (K of the k-means).
        unit_space: id of the tokenizer that made the units; stages refuse other spaces.
        durations: ``[T]`` frames each id lasts, when repeats were collapsed; else None.
    """

    ids: torch.Tensor
    frame_rate: float
    n_units: int
    unit_space: str
    durations: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.ids.dim() != 1:
            raise ValueError(f"Units.ids must be 1-D, got shape {tuple(self.ids.shape)}")
        if self.durations is not None and self.durations.shape != self.ids.shape:
            raise ValueError(f"Units.durations shape {tuple(self.durations.shape)} != ids shape "
                             f"{tuple(self.ids.shape)}")

    @property
    def deduped(self) -> bool:
        """Whether repeats were collapsed (then ``durations`` is set)."""
        return self.durations is not None

    @property
    def num_frames(self) -> int:
        """Length of the frame-rate stream these units stand for."""
        return int(self.durations.sum()) if self.durations is not None else len(self.ids)

    @property
    def seconds(self) -> float:
        return self.num_frames / self.frame_rate

    def __len__(self) -> int:
        return len(self.ids)

    def dedup(self) -> Units:
        """Collapse runs of the same id, recording run lengths in ``durations``."""
        from speechlm.units import dedup

        if self.deduped:
            return self
        ids, dur = dedup(self.ids)
        return dataclasses.replace(self, ids=ids, durations=dur)

    def expand(self) -> Units:
        """Undo :meth:`dedup`: repeat each id by its duration."""
        if not self.deduped:
            return self
        return dataclasses.replace(self, ids=torch.repeat_interleave(self.ids, self.durations),
                                   durations=None)
