"""Waveform crops and their frame-rate unit targets, for HuBERT-style encoder training.

The target tokenizer runs once per split: its frame-rate units (not deduplicated) go into the
same memory-mapped shards the LM trains on (:func:`speechlm.data.shards.dump_units` with
``dedup=False``: ``<bos> u1 ... uF <eos>`` per utterance, in manifest order), so training never
runs the tokenizer again.

A crop is aligned to the unit grid: it starts at a frame boundary (sample ``320 s``) and is
``320 (n - 1) + 400`` samples long, so the encoder's CNN makes exactly ``n`` frames from it and
frame ``j`` covers the same samples as the utterance's frame ``s + j``: its targets are
``units[s : s + n]``. All crops of a batch have the same length: the recipe's crop, or the
shortest utterance drawn if that is shorter (as HuBERT crops a batch to its shortest item).
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import torch

from speechlm.audio import FRAME_SIZE, HOP_SIZE, SAMPLE_RATE, AudioReader
from speechlm.data.manifest import Utterance, read_manifest, resolve_manifest
from speechlm.data.shards import dump_units, open_shard
from speechlm.errors import DataError
from speechlm.features import num_frames
from speechlm.units import special_id


def crop_samples(frames: int) -> int:
    """Samples whose CNN output is exactly ``frames`` frames."""
    return (frames - 1) * HOP_SIZE + FRAME_SIZE


@dataclasses.dataclass(frozen=True)
class TargetSet:
    """One split: its utterances and their frame-rate units.

    Attributes:
        items: Utterances in manifest order.
        tokens: The unit shard (``uint16`` memmap).
        starts: ``[N]`` index in ``tokens`` of each utterance's first unit.
        frames: ``[N]`` units (= frames) per utterance.
        meta: The shard's metadata (unit_space, n_units, ...).
    """

    items: list[Utterance]
    tokens: np.ndarray
    starts: np.ndarray
    frames: np.ndarray
    meta: dict

    @property
    def n_units(self) -> int:
        return int(self.meta["n_units"])

    def units(self, i: int, start: int, n: int) -> np.ndarray:
        """Units ``[start, start + n)`` of utterance ``i`` as int64."""
        a = self.starts[i] + start
        return np.asarray(self.tokens[a : a + n], dtype=np.int64)


def prepare_targets(tokenizer: str | os.PathLike, corpus: str | os.PathLike,
                    units_dir: str | os.PathLike, splits: tuple[str, ...] = ("train", "valid"),
                    progress: bool = True) -> None:
    """Tokenize ``splits`` of ``corpus`` at frame rate into ``units_dir``; existing shards are
    kept if ``tokenizer`` made them (:class:`DataError` if another tokenizer did)."""
    from speechlm.errors import ModelError
    from speechlm.tokenizer import Tokenizer

    try:
        tok = Tokenizer.load(tokenizer)
    except ModelError as err:
        raise ModelError(f"data.tokenizer: {err}. Targets from an encoder layer are made with "
                         "'speechlm train tokenizer --features RUN/model --layer L --out DIR' "
                         "(see scripts/build_encoder_units.sh)") from None
    dump_units(tok, corpus, units_dir, splits=splits, dedup=False, progress=progress)


def open_targets(units_dir: str | os.PathLike, split: str,
                 corpus: str | os.PathLike) -> TargetSet:
    """Open a split's frame-rate units and check them against the corpus manifest.

    Raises:
        DataError: the shard is deduplicated, or does not match the manifest (count of
            utterances, or units per utterance != frames of its audio).
    """
    tokens, meta = open_shard(units_dir, split)
    where = Path(units_dir) / f"{split}.json"
    if meta.get("dedup"):
        raise DataError(f"{where}: units are deduplicated; encoder targets need frame-rate units "
                        "(point data.units_dir at another directory)")
    items = read_manifest(resolve_manifest(split, corpus))
    bos = special_id("<bos>", int(meta["n_units"]))
    starts = np.flatnonzero(np.asarray(tokens) == bos)
    if len(starts) != len(items):
        raise DataError(f"{where}: {len(starts)} utterances, the {split} manifest of {corpus} "
                        f"has {len(items)}; remove {units_dir} to re-tokenize")
    frames = np.diff(np.append(starts, len(tokens))) - 2
    expected = np.array([num_frames(u.num_samples) for u in items])
    bad = np.flatnonzero(frames != expected)
    if len(bad):
        u = items[bad[0]]
        raise DataError(f"{where}: {u.name} has {frames[bad[0]]} units but its audio makes "
                        f"{expected[bad[0]]} frames; remove {units_dir} to re-tokenize")
    return TargetSet(items, tokens, starts + 1, frames, meta)


def usable(targets: TargetSet, min_seconds: float) -> np.ndarray:
    """Indices of the utterances at least ``min_seconds`` long (and one frame)."""
    min_frames = max(1, num_frames(int(min_seconds * SAMPLE_RATE)))
    pool = np.flatnonzero(targets.frames >= min_frames)
    if len(pool) == 0:
        raise DataError(f"no utterance of {targets.meta.get('corpus')} ({targets.meta['split']}) "
                        f"is at least data.min_seconds = {min_seconds} s long")
    return pool


def draw_crops(seed: int, step: int, pool: np.ndarray, frames: np.ndarray, batch: int,
               crop_frames: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The crops of one global batch: a pure function of (seed, step).

    Returns:
        ``(utterance [B], start_frame [B], n_frames)``: item ``b`` is frames
        ``[start_frame[b], start_frame[b] + n_frames)`` of utterance ``utterance[b]``.
    """
    rng = np.random.default_rng([seed, step])
    utt = pool[rng.integers(0, len(pool), size=batch)]
    n = int(min(crop_frames, frames[utt].min()))
    start = rng.integers(0, frames[utt] - n + 1)
    return utt, start, n


def load_crops(targets: TargetSet, utt: np.ndarray, start: np.ndarray, n: int,
               pool: Executor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms ``[B, crop_samples(n)]`` and their targets ``[B, n]`` (int64).

    ``pool``, when given, reads the files in parallel (libsndfile releases the GIL).
    """
    length = crop_samples(n)

    def read(i: int, s: int) -> torch.Tensor:
        u = targets.items[i]
        with AudioReader(u.path) as reader:
            w = reader.read(s * HOP_SIZE, s * HOP_SIZE + length)
        if w.numel() != length:
            raise DataError(f"{u.path}: read {w.numel()} samples at frame {s}, expected {length} "
                            "(the manifest's length is wrong)")
        return w

    args = (utt.tolist(), start.tolist())
    wavs = list(pool.map(read, *args) if pool is not None else map(read, *args))
    ys = [torch.from_numpy(targets.units(i, s, n)) for i, s in zip(*args)]
    return torch.stack(wavs), torch.stack(ys)
