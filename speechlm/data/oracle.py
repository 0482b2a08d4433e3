"""The phone oracle: what an LM of a given size learns from the same corpus when its units are
the reference phones instead of a tokenizer's.

Every corpus utterance whose engine reports an alignment carries a ``.phn`` beside its audio
(:mod:`speechlm.data.build`); so do the probe items of voices with alignments
(:mod:`speechlm.data.probes`). :class:`PhoneLabels` reads those files as if it were a tokenizer
(one unit per ARPAbet phone or ``SIL``, :data:`speechlm.data.phones.CLASSES`), so the LM trainer,
:func:`speechlm.eval.lm.perplexity` and :func:`speechlm.eval.probes.score_pairs` run unchanged
on them. An LM trained on these units is a ceiling for unit LMs of its size and data: its probe
scores say how much of the gap to the probes' targets is the units' fault (a tokenizer that
spelled every word as its phones, in every voice) and how much is the LM's.

    speechlm train lm --config configs/lm/oracle-phones-cpu.toml  # tokenizer "oracle-phones"
    speechlm eval lm --model outputs/lm-oracle-phones/model --probes data/probes-aligned

(the trainer writes the shards with :func:`dump_phone_shards`; ``eval lm`` scores with
:class:`PhoneLabels`, so probe sets must be spoken by voices whose engines report alignments).

Phones are deduplicated as units are (a repeated phone, e.g. across a word boundary, is one
unit); ``SPN`` segments (a symbol no table knew) are dropped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechlm.data.manifest import read_manifest, read_phn, resolve_manifest
from speechlm.data.phones import CLASSES, arpabet_of
from speechlm.data.shards import SHARD_FORMAT, SHARD_VERSION
from speechlm.errors import DataError
from speechlm.io import atomic_path, write_json_atomic
from speechlm.units import Units, special_id

__all__ = ["ORACLE_SPACE", "ORACLE_TOKENIZER", "PhoneLabels", "dump_phone_shards", "phone_ids"]

log = logging.getLogger(__name__)

ORACLE_SPACE = "oracle-arpabet-phones"  # the unit space its LMs record
ORACLE_TOKENIZER = "oracle-phones"  # the name a recipe gives as data.tokenizer
_INDEX = {p: i for i, p in enumerate(CLASSES)}


def phone_ids(phn: str | os.PathLike, sample_rate: int = 16000,
              dedup: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The phones of one ``.phn`` file as ids into :data:`CLASSES` and their lengths in
    seconds, repeats merged when ``dedup``.

    Raises:
        DataError: the file is missing or malformed.
    """
    try:
        segs = read_phn(phn)
    except OSError as err:
        raise DataError(f"no phone alignment {phn} ({err.strerror or err})") from None
    ids: list[int] = []
    secs: list[float] = []
    for a, b, sym in segs:
        p = arpabet_of(sym)
        if p is None or b <= a:
            continue
        i = _INDEX[p]
        if dedup and ids and ids[-1] == i:
            secs[-1] += (b - a) / sample_rate
        else:
            ids.append(i)
            secs.append((b - a) / sample_rate)
    return np.asarray(ids, dtype=np.int64), np.asarray(secs, dtype=np.float64)


class PhoneLabels:
    """A stand-in tokenizer whose units are each file's reference phones (its ``.phn``).

    It reads no audio: ``tokenize_files`` yields, for each path, the phones of the ``.phn``
    beside it, and raises :class:`DataError` in that file's turn when there is none.
    """

    unit_space = ORACLE_SPACE
    n_units = len(CLASSES)
    sample_rate = 16000
    frame_rate = 100.0  # durations are counted in 10 ms frames

    def tokenize_files(self, paths: Iterable[str | os.PathLike], dedup: bool = True,
                       workers: int | None = None) -> Iterator[Units]:
        for path in paths:
            ids, secs = phone_ids(Path(path).with_suffix(".phn"), self.sample_rate, dedup)
            frames = np.maximum(1, np.round(secs * self.frame_rate)).astype(np.int64)
            yield Units(ids=torch.from_numpy(ids), frame_rate=self.frame_rate,
                        n_units=self.n_units, unit_space=self.unit_space,
                        durations=torch.from_numpy(frames) if dedup else None)


def dump_phone_shards(corpus: str | os.PathLike, out_dir: str | os.PathLike,
                      splits: tuple[str, ...] = ("train", "valid", "test"),
                      progress: bool = True) -> dict[str, dict]:
    """Write ``out_dir/<split>.bin/.json`` (the format of :mod:`speechlm.data.shards`) from the
    deduplicated reference phones of every utterance of ``corpus`` that has them; the others
    (engines without alignments) are left out and counted in the metadata. Existing shards of
    the oracle's space are kept.

    Raises:
        DataError: a split has no aligned utterance, or ``out_dir`` holds other units.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(CLASSES)
    bos, eos = special_id("<bos>", n), special_id("<eos>", n)
    metas = {}
    for split in splits:
        meta_path = out_dir / f"{split}.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta.get("unit_space") != ORACLE_SPACE:
                raise DataError(f"{meta_path} holds {meta.get('unit_space')!r} units, not the "
                                "phone oracle's; choose another directory")
            metas[split] = meta
            continue
        items = read_manifest(resolve_manifest(split, corpus))
        chunks, seconds, units, skipped = [], 0.0, 0, 0
        for u in tqdm(items, desc=f"phones {split}", unit="utt", disable=not progress):
            if not u.phn_path.exists():
                skipped += 1
                continue
            ids, _ = phone_ids(u.phn_path)
            chunks.append(np.concatenate([[bos], ids, [eos]]).astype(np.uint16))
            seconds += u.num_samples / PhoneLabels.sample_rate
            units += len(ids)
        if not chunks:
            raise DataError(f"no utterance of {corpus}'s {split} split has a phone alignment")
        tokens = np.concatenate(chunks)
        with atomic_path(out_dir / f"{split}.bin") as tmp:
            tokens.tofile(tmp)
        meta = {"format": SHARD_FORMAT, "version": SHARD_VERSION, "split": split,
                "unit_space": ORACLE_SPACE, "n_units": n, "frame_rate": PhoneLabels.frame_rate,
                "dedup": True, "dtype": "uint16", "tokens": len(tokens), "units": units,
                "utterances": len(chunks), "unaligned_left_out": skipped,
                "seconds": round(seconds, 2),
                "units_per_second": round(units / max(seconds, 1e-9), 3),
                "corpus": str(corpus)}
        write_json_atomic(meta_path, meta)
        metas[split] = meta
        log.info("%s: %d aligned utterances (%d left out), %d phones", split, len(chunks),
                 skipped, units)
    return metas
