"""Build the ``world`` corpus: a million words of text read by 248 voice identities.

Plan (a pure function of the text, the voice table and the budget, so every machine and every
shard agrees on it):

* ``train`` / ``valid`` / ``test``: each sentence of the text pool (:mod:`.text`) is read once, by
  an identity drawn by a hash of the sentence among the non-held-out identities, weighted so
  that voices with phone alignments get most of the hours (:data:`voices.UNALIGNED_WEIGHT`);
* ``heldout``: every test sentence read a second time by a held-out identity (whole base voices
  and engines never heard in train or valid);
* ``arctic``: the 1,132 CMU ARCTIC prompts, read once each by a seen identity.

``hours`` keeps a hash-ordered prefix of every split's sentences, so a small build is a subset of
a bigger one and extending a build reuses what exists.

Layout::

    DIR/audio/<identity>/<sentence>.flac   16 kHz mono PCM16, peak 0.9
    DIR/audio/<identity>/<sentence>.phn    ARPAbet phones "start end phone" in samples
    DIR/audio/<identity>/<sentence>.wbd    words "start end word" in samples (festival)
    DIR/<split>.tsv/.wrd/.spk              manifests (speechlm.data.manifest)
    DIR/<split>.utt.tsv                    per utterance: base voice, engine, perturbation, source
    DIR/text/sentences.tsv                 the text pool: id, split, source, sentence
    DIR/corpus.json                        sizes, identities, rates, build time
    DIR/build.log.jsonl                    one line per synthesized chunk (engine, seconds)

The FLAC is renamed into place last, so a killed build resumes by skipping finished files.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechlm.audio import SAMPLE_RATE
from speechlm.data.engines import ENGINES
from speechlm.data.manifest import shard as take_shard
from speechlm.data.text import TextSentence, collect, keep, sentences_of
from speechlm.data.voices import BASE_VOICES, Identity, all_identities, render, to_samples
from speechlm.errors import DataError
from speechlm.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

WORLD_FORMAT_VERSION = 1
WORLD_SPLITS = ("train", "valid", "test", "heldout", "arctic")
WORDS_PER_SECOND = 2.8  # to turn an hours budget into words (measured on a 1.4 h sample: 2.8)
CHUNK = 20  # utterances per task
MIN_PER_SPLIT = 8  # sentences kept per split however small the budget
SMALL_SENTENCES = {"train": 16, "valid": 4, "test": 4, "arctic": 4}
SMALL_BASES = ("flite_slt", "fest_kal", "mbrola_us1", "espeak_us_m3", "mbrola_us3")


@dataclasses.dataclass(frozen=True)
class Utt:
    split: str
    sid: str  # sentence id
    text: str
    source: str
    identity: Identity

    @property
    def rel(self) -> str:
        return f"{self.identity.name}/{self.sid}.flac"


def _h(key: str) -> int:
    return int(hashlib.sha1(key.encode()).hexdigest(), 16)


class _Chooser:
    """Weighted choice of an identity by a hash: the same key gives the same identity."""

    def __init__(self, ids: Sequence[Identity]):
        per_base: dict[str, int] = {}
        for i in ids:
            per_base[i.base.name] = per_base.get(i.base.name, 0) + 1
        self.ids = list(ids)
        w = np.array([i.base.weight / per_base[i.base.name] for i in ids])
        self.cum = list(np.cumsum(w / w.sum()))

    def __call__(self, key: str) -> Identity:
        u = (_h(key) % 10**12) / 10**12
        return self.ids[min(bisect.bisect_right(self.cum, u), len(self.ids) - 1)]


def text_pool(out: Path, text: str | os.PathLike | None, arctic: Sequence) -> list[TextSentence]:
    """The sentence pool, cached in ``out/text/sentences.tsv``. ``text``: a plain file of
    sentences (one per line) instead of the Debian sources."""
    cache = out / "text" / "sentences.tsv"
    if cache.exists():
        rows = [ln.split("\t") for ln in cache.read_text(encoding="utf-8").splitlines()[1:]]
        return [TextSentence(r[3], r[2]) for r in rows if len(r) == 4]
    if text is not None:
        seen = {a.text.lower() for a in arctic}
        pool, keys = [], set()
        for line in Path(text).read_text(encoding="utf-8").splitlines():
            for s in sentences_of(line):
                if keep(s) and s.lower() not in seen and s.lower() not in keys:
                    keys.add(s.lower())
                    pool.append(TextSentence(s, Path(text).name))
        stats = {Path(text).name: {"sentences": len(pool), "licence": "user-supplied",
                                   "words": sum(p.words for p in pool)}}
    else:
        pool, stats = collect(exclude=[a.text for a in arctic])
    if not pool:
        raise DataError("the text pool is empty: install the text packages (scripts/setup.sh) "
                        "or give --text-pool FILE")
    body = "".join(f"{p.id}\t{p.split}\t{p.source}\t{p.text}\n" for p in pool)
    write_text_atomic(cache, "id\tsplit\tsource\tsentence\n" + body)
    write_json_atomic(out / "text" / "sources.json", stats)
    return pool


def plan(pool: Sequence[TextSentence], arctic: Sequence, identities: Sequence[Identity], *,
         hours: float | None = None, small: bool = False) -> list[Utt]:
    """Every utterance of the corpus, in a fixed order."""
    seen = [i for i in identities if not i.held_out]
    held = [i for i in identities if i.held_out]
    if not seen:
        raise DataError("no usable voice for the training splits (are the engines installed?)")
    by_split: dict[str, list[tuple[str, str, str]]] = {s: [] for s in ("train", "valid", "test")}
    for p in pool:
        by_split[p.split].append((p.id, p.text, p.source))
    by_split["arctic"] = [(a.id, a.text, "arctic") for a in arctic]
    for rows in by_split.values():
        rows.sort(key=lambda r: _h("order:" + r[0]))
    if small:
        by_split = {s: rows[:SMALL_SENTENCES[s]] for s, rows in by_split.items()}
    elif hours is not None:
        total = sum(len(t.split()) for _, t, _ in by_split["train"])
        q = min(1.0, hours * 3600 * WORDS_PER_SECOND / max(total, 1))
        by_split = {s: rows[:max(MIN_PER_SPLIT, math.ceil(q * len(rows)))]
                    for s, rows in by_split.items()}
    choose, choose_held = _Chooser(seen), (_Chooser(held) if held else None)
    utts = []
    for split in ("train", "valid", "test", "arctic"):
        for sid, t, src in by_split[split]:
            utts.append(Utt(split, sid, t, src, choose(f"voice:{sid}")))
            if split == "test" and choose_held is not None:
                utts.append(Utt("heldout", sid, t, src, choose_held(f"held:{sid}")))
    return utts


def write_segments(path: Path, segs, n: int) -> None:
    """Write segments in seconds as a ``.phn`` / ``.wbd`` file ("start end label" in samples,
    contiguous over ``n`` samples), atomically."""
    lines = [f"{a} {b} {p}" for a, b, p in to_samples(segs, n)]
    write_text_atomic(path, "\n".join(lines) + "\n")


def synth_chunk(args: tuple[Identity, list[tuple[str, str]], str]) -> dict:
    """Synthesize ``[(sentence id, text)]`` in one identity into ``audio_dir``."""
    ident, items, audio_dir = args
    d = Path(audio_dir) / ident.name
    # a Piper utterance built before its durations were read (or without onnx) is made again
    # when they can be had now: the audio comes out the same, and the .phn beside it
    redo_phn = ident.base.alignment == "predicted" and importlib.util.find_spec("onnx") is not None
    todo = [(sid, t) for sid, t in items if not (d / f"{sid}.flac").exists()
            or (redo_phn and not (d / f"{sid}.phn").exists())]
    stat = {"identity": ident.name, "engine": ident.base.engine, "utts": len(todo),
            "audio_s": 0.0, "wall_s": 0.0}
    if not todo:
        return stat
    d.mkdir(parents=True, exist_ok=True)
    for sid, _ in todo:  # a killed run may have left half-written files: the audio's
        (d / f".{sid}.tmp.flac").unlink(missing_ok=True)  # and atomic_path's .phn / .wbd temps
        for stale in d.glob(f".{sid}.*.tmp.*"):
            stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    for (sid, _), s in zip(todo, render(ident, [t for _, t in todo])):
        n = len(s.audio)
        if s.phones:
            write_segments(d / f"{sid}.phn", s.phones, n)
        if s.words:
            write_segments(d / f"{sid}.wbd", s.words, n)
        tmp = d / f".{sid}.tmp.flac"
        sf.write(str(tmp), s.audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
        os.replace(tmp, d / f"{sid}.flac")
        stat["audio_s"] += n / SAMPLE_RATE
    stat["wall_s"] = time.perf_counter() - t0
    return stat


def tasks_of(utts: Sequence[Utt], audio_dir: Path) -> list[tuple[Identity, list, str]]:
    """Group utterances by identity into chunks, in a fixed order."""
    groups: dict[str, list[Utt]] = {}
    for u in utts:
        groups.setdefault(u.identity.name, []).append(u)
    tasks = []
    for name in sorted(groups):
        g = groups[name]
        for i in range(0, len(g), CHUNK):
            tasks.append((g[0].identity, [(u.sid, u.text) for u in g[i:i + CHUNK]],
                          str(audio_dir)))
    tasks.sort(key=lambda t: _h(f"task:{t[0].name}:{t[1][0][0]}"))  # mix engines across shards
    return tasks


def usable_identities(names: Sequence[str] | None = None) -> tuple[list[Identity], dict]:
    """Identities whose engine and voice are installed, and a note per skipped base voice."""
    skipped: dict[str, str] = {}
    bases = [b for b in BASE_VOICES if names is None or b.name in names]
    ok = []
    for b in bases:
        eng = ENGINES[b.engine]
        why = eng.missing() or (f"{b.engine}: voice {b.voice} not installed"
                                if eng.voice_missing(b.voice) else None)
        if why:
            skipped[b.name] = why
        else:
            ok.append(b)
    for why in sorted(set(skipped.values())):
        log.warning("skipping voices: %s", why)
    return all_identities(tuple(ok)), skipped


def write_world_manifests(out: Path, utts: Sequence[Utt]) -> dict:
    """Write ``<split>.tsv/.wrd/.spk/.utt.tsv`` from the files on disk; return the sizes."""
    root = (out / "audio").resolve()
    splits: dict[str, dict] = {}
    for split in WORLD_SPLITS:
        rows = [u for u in utts if u.split == split]
        tsv, wrd, spk, meta = [str(root)], [], [], ["name\tbase\tengine\tperturbation\tsource"]
        secs = aligned = 0.0
        per_engine: dict[str, dict] = {}
        for u in rows:
            n = sf.info(str(root / u.rel)).frames
            tsv.append(f"{u.rel}\t{n}")
            wrd.append(u.text)
            spk.append(u.identity.name)
            meta.append(f"{u.rel[:-5]}\t{u.identity.base.name}\t{u.identity.base.engine}\t"
                        f"{u.identity.perturbation.code}\t{u.source}")
            s = n / SAMPLE_RATE
            secs += s
            has_phn = (root / u.rel).with_suffix(".phn").exists()
            aligned += s if has_phn else 0.0
            e = per_engine.setdefault(u.identity.base.engine,
                                      {"hours": 0.0, "utterances": 0, "identities": set(),
                                       "bases": set()})
            e["hours"] += s / 3600
            e["utterances"] += 1
            e["identities"].add(u.identity.name)
            e["bases"].add(u.identity.base.name)
        for ext, lines in ((".tsv", tsv), (".wrd", wrd), (".spk", spk), (".utt.tsv", meta)):
            text = "".join(x + "\n" for x in lines)
            write_text_atomic(out / f"{split}{ext}", text)
        splits[split] = {
            "utterances": len(rows), "hours": round(secs / 3600, 4),
            "aligned_hours": round(aligned / 3600, 4),
            "words": sum(len(u.text.split()) for u in rows),
            "sentences": len({u.sid for u in rows}), "identities": len(set(spk)),
            "base_voices": len({u.identity.base.name for u in rows}),
            "per_engine": {k: {"hours": round(v["hours"], 4), "utterances": v["utterances"],
                               "identities": len(v["identities"]),
                               "base_voices": sorted(v["bases"])}
                           for k, v in sorted(per_engine.items())},
        }
    return splits


def _rates(out: Path) -> dict:
    """Real-time factors per engine from ``build.log.jsonl``: audio seconds per wall second."""
    acc: dict[str, list[float]] = {}
    log_path = out / "build.log.jsonl"
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            r = json.loads(line)
            if r["utts"]:
                a = acc.setdefault(r["engine"], [0.0, 0.0, 0])
                a[0] += r["audio_s"]
                a[1] += r["wall_s"]
                a[2] += r["utts"]
    return {e: {"audio_hours": round(a / 3600, 4), "wall_hours": round(w / 3600, 4),
                "x_real_time": round(a / w, 1) if w else None, "utterances": n}
            for e, (a, w, n) in sorted(acc.items())}


def synth_world(out: str | os.PathLike, *, hours: float | None = None, small: bool = False,
                shard: str | None = None, jobs: int | None = None, voices: Sequence[str] | None
                = None, text_pool_file: str | os.PathLike | None = None,
                arctic_text: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Build (or resume) the ``world`` corpus in ``out`` and return its ``corpus.json``.

    Args:
        out: output directory.
        hours: budget for the train split (approximate, from word counts); None: everything.
        small: a few sentences in five voices, for tests.
        shard: ``I/N``: synthesize only shard I of N (then run again without it for manifests).
        jobs: worker processes (default: all cores).
        voices: base voice names to use (default: all installed).
        text_pool_file: plain sentences to use instead of the Debian text sources.
        arctic_text: the ARCTIC prompt file (default: ../shared/data/cmuarctic.data).
        progress: progress bar on stderr.
    """
    from speechlm.data.corpus import default_text_path, read_sentences

    t_start = time.time()
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    arctic = read_sentences(arctic_text or default_text_path())
    pool = text_pool(out, text_pool_file, arctic)
    if small and voices is None:
        voices = SMALL_BASES
    identities, skipped = usable_identities(voices)
    if small:
        identities = [i for i in identities if i.perturbation.neutral or
                      i == identities[1]][: len(SMALL_BASES) + 1]
    utts = plan(pool, arctic, identities, hours=hours, small=small)
    tasks = tasks_of(utts, out / "audio")
    if shard:
        tasks = take_shard(tasks, shard)
    bar = tqdm(total=sum(len(t[1]) for t in tasks), desc="synth", unit="utt",
               disable=not progress)
    jobs = jobs or os.cpu_count() or 1
    with open(out / "build.log.jsonl", "a") as logf:
        def done(stat: dict, n: int) -> None:
            if stat["utts"]:
                logf.write(json.dumps(stat) + "\n")
                logf.flush()
            bar.update(n)

        if jobs == 1:
            for t in tasks:
                done(synth_chunk(t), len(t[1]))
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool_ex:
                for t, stat in zip(tasks, pool_ex.map(synth_chunk, tasks)):
                    done(stat, len(t[1]))
    bar.close()
    missing = [u for u in utts if not (out / "audio" / u.rel).exists()]
    if missing:
        log.info("shard %s done; %d utterances of other shards are still missing: run again "
                 "without --shard to finish and write the manifests", shard, len(missing))
        return {"complete": False, "missing": len(missing)}
    prev = json.loads((out / "corpus.json").read_text()) if (out / "corpus.json").exists() else {}
    splits = write_world_manifests(out, utts)
    sources = json.loads((out / "text" / "sources.json").read_text()) \
        if (out / "text" / "sources.json").exists() else {}
    summary = {
        "format": "speechlm.corpus", "preset": "world", "version": WORLD_FORMAT_VERSION,
        "sample_rate": SAMPLE_RATE, "complete": True, "budget_hours": hours, "small": small,
        "hours": round(sum(s["hours"] for s in splits.values()), 4),
        "aligned_share": round(sum(s["aligned_hours"] for s in splits.values()) /
                               max(1e-9, sum(s["hours"] for s in splits.values())), 4),
        "speakers": len({u.identity.name for u in utts}),
        "base_voices": sorted({u.identity.base.name for u in utts}),
        "held_out_base_voices": sorted({u.identity.base.name for u in utts
                                        if u.identity.held_out}),
        "skipped_voices": skipped, "splits": splits, "text_pool": {
            "sentences": len(pool), "words": sum(p.words for p in pool),
            "per_split": {s: sum(p.split == s for p in pool) for s in ("train", "valid", "test")},
            "sources": sources},
        "engine_rates": _rates(out),
        "build_wall_hours": round(prev.get("build_wall_hours", 0.0) +
                                  (time.time() - t_start) / 3600, 4),
    }
    write_json_atomic(out / "corpus.json", summary)
    log.info("world corpus at %s: %.2f h, %d identities", out, summary["hours"],
             summary["speakers"])
    return summary
