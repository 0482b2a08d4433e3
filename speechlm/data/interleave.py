"""Training data for a text + speech LM: unit shards mixed with text and with sequences that switch
between the two at word boundaries (SpiritLM-style interleaving).

Three kinds of sequence go into one shard (the :mod:`speechlm.data.shards` format, uint16):

* **units**: every training utterance as ``<bos> u1 ... un <eos>`` (deduplicated units);
* **interleaved**: every utterance with word times (``.wbd``, festival's voices), cut at word
  boundaries into spans of 1..``max_span`` words that alternate between the words' characters
  (``<text> t h e _ o l d _``) and the deduplicated units of the same stretch of audio
  (``<speech> u7 u42 ...``), starting with either at random;
* **text**: training-split sentences of the corpus's text pool (``text/sentences.tsv``) as
  ``<bos> <text> chars <eos>``, up to ``text_ratio`` times the unit tokens. Valid and test
  sentences never enter: the pool's split is the corpus's split.

A speech span's audio runs from its first word's start to the next word's start, so the pauses
between words stay with the speech before them. The valid shard is the units-only valid shard, so
the validation loss of an interleaved run and of a units-only run measure the same thing.
Everything follows from ``seed``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechlm.audio import SAMPLE_RATE
from speechlm.data.manifest import read_manifest, read_phn, resolve_manifest
from speechlm.data.shards import SHARD_FORMAT, SHARD_VERSION, open_shard, utterances
from speechlm.errors import DataError
from speechlm.io import atomic_path, write_json_atomic
from speechlm.units import encode_words, marker_id, normalize_text, special_id

log = logging.getLogger(__name__)


def collapse_runs(ids: np.ndarray) -> np.ndarray:
    """Collapse repeats: ``[5 5 7 7 5]`` -> ``[5 7 5]``."""
    if len(ids) == 0:
        return ids
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    return ids[keep]


def dedup_shard(frames_dir: str | os.PathLike, out_dir: str | os.PathLike,
                splits: tuple[str, ...] = ("train", "valid")) -> None:
    """Write the deduplicated shards of ``frames_dir``'s frame-rate shards into ``out_dir``
    (what :func:`speechlm.data.shards.dump_units` with ``dedup=True`` would write, without
    running the tokenizer again). Existing splits are kept."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in splits:
        if (out_dir / f"{split}.json").exists():
            continue
        tokens, meta = open_shard(frames_dir, split)
        if meta["dedup"]:
            raise DataError(f"{frames_dir}/{split} is already deduplicated")
        K = meta["n_units"]
        bos, eos = special_id("<bos>", K), special_id("<eos>", K)
        chunks, n_units = [], 0
        for u in utterances(np.asarray(tokens), K):
            r = collapse_runs(u)
            n_units += len(r)
            chunks.append(np.concatenate([[bos], r, [eos]]).astype(np.uint16))
        out = np.concatenate(chunks) if chunks else np.zeros(0, np.uint16)
        with atomic_path(out_dir / f"{split}.bin") as tmp:
            out.tofile(tmp)
        write_json_atomic(out_dir / f"{split}.json", {
            **meta, "dedup": True, "tokens": len(out), "units": n_units,
            "units_per_second": round(n_units / max(meta["seconds"], 1e-9), 3),
            "derived_from": str(frames_dir)})


def interleave_utterance(frames: np.ndarray, words: list[tuple[int, int, str]],
                         frame_rate: float, sample_rate: int, n_units: int, text_vocab: str,
                         rng: np.random.Generator, max_span: int = 8) -> list[int]:
    """``<bos>`` + alternating text / speech spans of one utterance + ``<eos>``.

    Args:
        frames: ``[F]`` frame-rate unit ids of the utterance.
        words: ``(start, end, word)`` in samples, in order.
    """
    words = [(s, e, w) for s, e, w in words if normalize_text(w, text_vocab)]
    n = len(words)
    bos, eos = special_id("<bos>", n_units), special_id("<eos>", n_units)
    t_mark, s_mark = marker_id("<text>", n_units), marker_id("<speech>", n_units)
    # frame where each word's stretch starts; the first starts at 0, the last ends at the end
    bounds = [0] + [min(len(frames), round(s * frame_rate / sample_rate)) for s, _, _ in words[1:]]
    bounds = list(np.maximum.accumulate(bounds)) + [len(frames)]
    out, i = [bos], 0
    text = bool(rng.integers(2))
    while i < n:
        j = min(n, i + int(rng.integers(1, max_span + 1)))
        if text:
            ws = [x for _, _, w in words[i:j] for x in normalize_text(w, text_vocab)]
            out += [t_mark] + encode_words(ws, n_units, text_vocab)
        else:
            out += ([s_mark] if i else []) + collapse_runs(frames[bounds[i]:bounds[j]]).tolist()
        text, i = not text, j
    return out + [eos]


def text_sequences(corpus: str | os.PathLike, n_units: int, text_vocab: str, budget: int,
                   rng: np.random.Generator) -> list[list[int]]:
    """``<bos> <text> chars <eos>`` for training-split sentences of the text pool, in a random
    order, until ``budget`` tokens."""
    pool = Path(corpus) / "text" / "sentences.tsv"
    if not pool.exists():
        raise DataError(f"{pool} is missing: the text pool is written by 'speechlm corpus synth "
                        "--preset world'")
    rows = [ln.split("\t") for ln in pool.read_text(encoding="utf-8").splitlines()[1:]]
    sents = [r[3] for r in rows if len(r) == 4 and r[1] == "train"]
    bos, eos, t_mark = (special_id("<bos>", n_units), special_id("<eos>", n_units),
                        marker_id("<text>", n_units))
    out, total = [], 0
    for k in rng.permutation(len(sents)):
        if total >= budget:
            break
        words = normalize_text(sents[k], text_vocab)
        if words:
            seq = [bos, t_mark] + encode_words(words, n_units, text_vocab) + [eos]
            out.append(seq)
            total += len(seq)
    return out


def write_mix(out_dir: str | os.PathLike, seqs: list[list[int]], units_dir: str | os.PathLike,
              rng: np.random.Generator) -> np.ndarray:
    """Write ``out_dir/train.bin``, the sequences shuffled by ``rng`` and concatenated, and
    ``valid.{bin,json}``, copies of ``units_dir``'s (validation on units only, as a units-only
    run sees it), each atomically; returns the train tokens. The caller writes ``train.json``
    last, so a mix with its metadata is whole."""
    out_dir = Path(out_dir)
    order = rng.permutation(len(seqs))
    out = np.fromiter((t for k in order for t in seqs[k]), dtype=np.uint16)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "train.bin") as tmp:
        out.tofile(tmp)
    for ext in (".bin", ".json"):
        with atomic_path(out_dir / f"valid{ext}") as tmp:
            shutil.copyfile(Path(units_dir) / f"valid{ext}", tmp)
    return out


def build_mix(frames_dir: str | os.PathLike, units_dir: str | os.PathLike,
              corpus: str | os.PathLike, out_dir: str | os.PathLike, text_vocab: str, *,
              text_ratio: float = 1.0, max_span: int = 8, copies: int = 1, seed: int = 0,
              progress: bool = True) -> dict:
    """Write ``out_dir/train.bin`` (units + interleaved + text, shuffled) and ``valid.bin`` (a
    copy of ``units_dir``'s valid shard). ``copies``: interleaved sequences per utterance with
    word times, each cut into its own random spans. Returns the train metadata (kept if it
    exists)."""
    out_dir = Path(out_dir)
    if (out_dir / "train.json").exists() and (out_dir / "valid.json").exists():
        meta = json.loads((out_dir / "train.json").read_text())
        asked = {"text_vocab": text_vocab, "text_ratio": text_ratio, "max_span": max_span,
                 "copies": copies, "seed": seed}
        other = [k for k, v in asked.items() if meta.get(k, 1 if k == "copies" else None) != v]
        if other:
            raise DataError(f"{out_dir} was made with another {', '.join(other)}; remove it or "
                            "choose another mix_dir")
        return meta
    if not text_vocab or " " not in text_vocab:
        raise DataError("the text vocabulary must hold the space (the word separator)")
    tokens, fmeta = open_shard(frames_dir, "train")
    umeta = open_shard(units_dir, "train")[1]
    if fmeta["dedup"] or fmeta["unit_space"] != umeta["unit_space"]:
        raise DataError(f"{frames_dir} must hold frame-rate units of {umeta['unit_space']}")
    K, rate = fmeta["n_units"], fmeta["frame_rate"]
    items = read_manifest(resolve_manifest("train", corpus))
    utts = utterances(np.asarray(tokens), K)
    if len(items) != len(utts):
        raise DataError(f"{frames_dir} holds {len(utts)} utterances, the train manifest of "
                        f"{corpus} {len(items)}: rebuild the shards")
    rng = np.random.default_rng(seed)
    bos, eos = special_id("<bos>", K), special_id("<eos>", K)
    seqs: list[list[int]] = []
    counts = {"units": 0, "interleaved": 0, "text": 0, "interleaved_utterances": 0}
    for item, frames in tqdm(list(zip(items, utts)), desc="interleave", unit="utt",
                             disable=not progress):
        unit_seq = [bos] + collapse_runs(frames).tolist() + [eos]
        seqs.append(unit_seq)
        counts["units"] += len(unit_seq)
        wbd = item.path.with_suffix(".wbd")
        if wbd.exists():
            words = read_phn(wbd)
            for _ in range(copies):
                seq = interleave_utterance(frames, words, rate, SAMPLE_RATE, K, text_vocab, rng,
                                           max_span)
                seqs.append(seq)
                counts["interleaved"] += len(seq)
            counts["interleaved_utterances"] += 1
    text = text_sequences(corpus, K, text_vocab, int(text_ratio * counts["units"]), rng)
    seqs += text
    counts["text"] = sum(len(s) for s in text)
    out = write_mix(out_dir, seqs, units_dir, rng)
    meta = {**umeta, "format": SHARD_FORMAT, "version": SHARD_VERSION, "tokens": len(out),
            "text_vocab": text_vocab, "mix": counts, "max_span": max_span, "copies": copies,
            "seed": seed,
            "text_ratio": text_ratio, "units_dir": str(units_dir)}
    write_json_atomic(out_dir / "train.json", meta)
    log.info("mix: %s", counts)
    return meta
