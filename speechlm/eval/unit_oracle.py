"""Units corrected by the reference phones: how many words would resynthesis keep if the encoder
heard every phone right?

The world corpus's aligned utterances carry a ``.phn`` (ARPAbet + ``SIL``) beside their audio.
A :class:`UnitPhoneTable`, fitted on training utterances, gives each unit its majority phone and
each phone the unit most often on it. Two readings of an utterance's units then ask the vocoder
what the encoder's phone errors cost (``speechlm eval resynth --unit-oracle MODE``):

* ``corrected``: a frame keeps its unit when the unit's majority phone is the frame's reference
  phone, and otherwise takes the reference phone's most frequent unit: the encoder's phone
  errors removed, the rest of what its units say (which of a phone's units, where the
  boundaries fall) kept;
* ``phones``: every labelled frame takes its reference phone's most frequent unit: phone
  identity and timing only, one unit per phone.

If resynthesis keeps the words from either, the units were what lost them; if it loses them from
both, the decoder does. Frames without a label (outside every segment, or a symbol no table
knew) keep their unit.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from speechlm.data.manifest import read_phn
from speechlm.data.phones import CLASSES, arpabet_of
from speechlm.errors import DataError

MODES = ("corrected", "phones")
_INDEX = {p: i for i, p in enumerate(CLASSES)}


def frame_phone_ids(phn: str | os.PathLike, n_frames: int) -> np.ndarray:
    """The reference phone of each of ``n_frames`` unit frames as an index into
    :data:`~speechlm.data.phones.CLASSES` (-1: no label), the segment that holds the frame's
    centre (as ``eval tokenizer`` labels frames)."""
    from speechlm.eval.tokenizer import frame_labels

    out = np.full(n_frames, -1, dtype=np.int64)
    for i, lab in enumerate(frame_labels(read_phn(phn), n_frames)):
        arpa = arpabet_of(lab) if lab is not None else None
        if arpa is not None:
            out[i] = _INDEX[arpa]
    return out


@dataclasses.dataclass(frozen=True)
class UnitPhoneTable:
    """``unit_phone[u]``: the majority phone of unit ``u`` (-1: never on a labelled frame);
    ``phone_unit[p]``: the unit most often on phone ``p`` (-1: the phone was never seen);
    ``frames``: labelled frames counted."""

    unit_phone: np.ndarray
    phone_unit: np.ndarray
    frames: int

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> UnitPhoneTable:
        """From ``counts[unit, phone]`` (frames)."""
        counts = np.asarray(counts)
        unit_phone = np.where(counts.sum(1) > 0, counts.argmax(1), -1)
        phone_unit = np.where(counts.sum(0) > 0, counts.argmax(0), -1)
        return cls(unit_phone, phone_unit, int(counts.sum()))

    @classmethod
    def fit(cls, tokenizer, utterances: Iterable[tuple[Path, Path]],
            progress: bool = False) -> UnitPhoneTable:
        """Count units against reference phones over ``(audio, .phn)`` pairs, read with
        ``tokenizer``.

        Raises:
            DataError: no labelled frame among them.
        """
        from tqdm import tqdm

        from speechlm.audio import load_audio

        counts = np.zeros((tokenizer.n_units, len(CLASSES)), dtype=np.int64)
        for audio, phn in tqdm(list(utterances), desc="unit-phone table", disable=not progress):
            ids = tokenizer.tokenize_wave(load_audio(audio)).ids.numpy().astype(np.int64)
            ref = frame_phone_ids(phn, len(ids))
            keep = ref >= 0
            np.add.at(counts, (ids[keep], ref[keep]), 1)
        if not counts.any():
            raise DataError("unit oracle: no labelled frame to fit the unit-phone table on")
        return cls.from_counts(counts)

    def apply(self, ids: np.ndarray, ref: np.ndarray, mode: str) -> tuple[np.ndarray, int]:
        """``ids`` read by ``mode`` against the reference phones ``ref`` (one per frame, -1:
        none); returns the new ids and how many frames changed."""
        if mode not in MODES:
            raise DataError(f"unit oracle: mode must be one of {', '.join(MODES)}, got {mode!r}")
        ids, ref = np.asarray(ids, dtype=np.int64), np.asarray(ref, dtype=np.int64)
        if ids.shape != ref.shape:
            raise DataError(f"unit oracle: {len(ids)} units and {len(ref)} labels")
        known = ref >= 0
        target = np.where(known, self.phone_unit[np.maximum(ref, 0)], -1)
        change = known & (target >= 0)
        if mode == "corrected":
            change &= self.unit_phone[ids] != ref
        out = np.where(change, target, ids)
        return out, int((out != ids).sum())


__all__ = ["MODES", "UnitPhoneTable", "frame_phone_ids"]
