"""A unit vocoder's analysed corpus on disk (made by :func:`speechlm.train.vocoder.build_cache`),
read by the trainers that learn from it: per split, ``<split>.json`` (each utterance's id,
identity, offset and length in unit frames), ``<split>.units.npy`` (frame units),
``<split>.feats.npy`` and ``<split>.f0.npy`` (two vocoder frames per unit frame)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class CacheSplit:
    """Memory-mapped view of one analysed split."""

    def __init__(self, cache: Path, split: str):
        self.meta = json.loads((cache / f"{split}.json").read_text())
        self.units = np.load(cache / f"{split}.units.npy", mmap_mode="r")
        self.feats = np.load(cache / f"{split}.feats.npy", mmap_mode="r")
        self.f0 = np.load(cache / f"{split}.f0.npy", mmap_mode="r")
        self._index(self.meta["utterances"])

    def _index(self, utts: list) -> None:
        self.utts = utts
        self.by_speaker: dict[str, list[int]] = {}
        for i, (_, spk, _, _) in enumerate(utts):
            self.by_speaker.setdefault(spk, []).append(i)

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the utterances ``keep`` (indices into :attr:`utts`, in that order); the
        arrays stay as they are, so an item reads the same frames as before."""
        self._index([self.utts[i] for i in keep])

    def __len__(self) -> int:
        return len(self.utts)

    def item(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, _, off, n = self.utts[i]
        return (self.units[off : off + n], self.feats[2 * off : 2 * (off + n)],
                self.f0[2 * off : 2 * (off + n)])


def base_voice(identity: str) -> str:
    """An identity's base voice: its name up to the first ``-`` (``mbrola_us1-f108p94g125r92``
    -> ``mbrola_us1``; an unperturbed identity is its base voice)."""
    return identity.split("-", 1)[0]


__all__ = ["CacheSplit", "base_voice"]
