"""What every stage declares, and the one check that stages can be composed.

A *stage* (tokenizer, unit LM, vocoder) works in one **unit space**: the vocabulary of a
particular tokenizer (``<encoder>-k<K>-<centroid hash>``), at that tokenizer's unit frame rate,
over speech at its sample rate. Every stage exposes these as properties, as moshi's compression
models declare ``frame_rate`` / ``sample_rate`` / ``cardinality``; :func:`check_same_units`
compares them once when stages are put together and names both values on a mismatch.
"""

from __future__ import annotations

import abc

from speechlm.errors import ModelError

# (property, words used in the error message), in the order they are checked
CONTRACT = (("unit_space", "unit space"), ("frame_rate", "frame rate"),
            ("n_units", "unit count"), ("sample_rate", "sample rate"))


class Stage(abc.ABC):
    """The properties every stage provides."""

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Hz of the speech the stage reads or writes (16 kHz for every bundled stage)."""

    @property
    @abc.abstractmethod
    def frame_rate(self) -> float:
        """Unit frames per second (before deduplication)."""

    @property
    @abc.abstractmethod
    def n_units(self) -> int:
        """Size of the unit vocabulary (K of the k-means)."""

    @property
    @abc.abstractmethod
    def unit_space(self) -> str:
        """Id of the unit vocabulary; stages trained on another refuse these units."""


def check_same_units(reference: tuple[str, Stage], *others: tuple[str, Stage]) -> None:
    """Raise :class:`ModelError` unless every stage in ``others`` has the reference's unit
    space, frame rate, unit count and sample rate; the message names both values."""
    ref_name, ref = reference
    for name, stage in others:
        for prop, what in CONTRACT:
            got, want = getattr(stage, prop), getattr(ref, prop)
            if got != want:
                raise ModelError(f"the {name}'s {what} is {got!r} but the {ref_name}'s is "
                                 f"{want!r}; use stages trained on the same units")


__all__ = ["CONTRACT", "Stage", "check_same_units"]
