"""Unit shards for LM training: each split tokenized once into a memory-mapped token array.

``DIR/<split>.bin`` holds uint16 tokens, every utterance as ``<bos> u1 ... un <eos>``, one after
another; ``DIR/<split>.json`` says what they are (unit space, dedup, counts, seconds). Training
reads random windows of the array through ``np.memmap``, so the corpus never has to fit in RAM.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechlm.data.manifest import read_manifest, resolve_manifest
from speechlm.errors import DataError
from speechlm.io import atomic_path, write_json_atomic
from speechlm.tokenizer import Tokenizer
from speechlm.units import special_id

log = logging.getLogger(__name__)

SHARD_FORMAT = "speechlm.unit_shard"
SHARD_VERSION = 1


def dump_units(tokenizer: Tokenizer, corpus: str | os.PathLike, out_dir: str | os.PathLike,
               splits: tuple[str, ...] = ("train", "valid", "test"), dedup: bool = True,
               progress: bool = True) -> dict[str, dict]:
    """Tokenize each split of ``corpus`` into ``out_dir/<split>.bin`` (skips existing shards)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bos, eos = special_id("<bos>", tokenizer.n_units), special_id("<eos>", tokenizer.n_units)
    if eos >= 2**16:
        raise DataError(f"{tokenizer.n_units} units do not fit uint16 shards")
    metas = {}
    for split in splits:
        meta_path = out_dir / f"{split}.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta.get("unit_space") == tokenizer.unit_space and meta.get("dedup") == dedup:
                metas[split] = meta
                continue
            raise DataError(f"{meta_path} was made with another tokenizer or dedup setting; "
                            "remove the shard directory or choose another")
        items = read_manifest(resolve_manifest(split, corpus))
        chunks, seconds, n_units = [], 0.0, 0
        results = tokenizer.tokenize_files([u.path for u in items], dedup=dedup)
        for u, units in tqdm(zip(items, results), desc=f"units {split}", unit="utt",
                             total=len(items), disable=not progress):
            ids = units.ids.numpy().astype(np.uint16)
            chunks.append(np.concatenate([[bos], ids, [eos]]).astype(np.uint16))
            seconds += u.num_samples / tokenizer.sample_rate
            n_units += len(ids)
        tokens = np.concatenate(chunks)
        with atomic_path(out_dir / f"{split}.bin") as tmp:
            tokens.tofile(tmp)
        meta = {"format": SHARD_FORMAT, "version": SHARD_VERSION, "split": split,
                "unit_space": tokenizer.unit_space, "n_units": tokenizer.n_units,
                "frame_rate": tokenizer.frame_rate, "dedup": dedup, "dtype": "uint16",
                "tokens": len(tokens), "units": n_units, "utterances": len(items),
                "seconds": round(seconds, 2),
                "units_per_second": round(n_units / max(seconds, 1e-9), 3),
                "corpus": str(corpus)}
        write_json_atomic(meta_path, meta)
        metas[split] = meta
        log.info("%s: %d utterances, %d tokens", split, len(items), len(tokens))
    return metas


def open_shard(data_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, dict]:
    """Memory-map ``<split>.bin`` and read its metadata."""
    data_dir = Path(data_dir)
    meta_path = data_dir / f"{split}.json"
    if not meta_path.exists():
        raise DataError(f"no unit shard {meta_path}; make it with 'speechlm train lm' "
                        "(it dumps units on first use)")
    meta = json.loads(meta_path.read_text())
    arr = np.memmap(data_dir / f"{split}.bin", dtype=np.uint16, mode="r")
    if len(arr) != meta["tokens"]:
        raise DataError(f"{data_dir / f'{split}.bin'} has {len(arr)} tokens, "
                        f"{meta_path} says {meta['tokens']}")
    return arr, meta


def utterances(tokens: np.ndarray, n_units: int) -> list[np.ndarray]:
    """Split a shard back into its utterances' unit arrays (specials removed)."""
    bos = special_id("<bos>", n_units)
    starts = np.flatnonzero(tokens == bos)
    ends = np.append(starts[1:], len(tokens))
    return [np.asarray(tokens[a + 1 : b - 1], dtype=np.int64) for a, b in zip(starts, ends)]
