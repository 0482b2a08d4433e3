"""Isolated words spoken by the training voices: what a spot-the-word item sounds like.

The corpus is sentences, so a tokenizer trained on it has heard words only inside sentences;
alone, a word is spoken in its citation form, starts at the very edge of the audio and ends in a
released stop, and the bundled phone head spells a third of its phones wrong (0.16-0.20 inside
the probe sentences). This set gives the phone head isolated words to learn from:

* **words**: alphabetic words of the corpus's training transcripts (3+ letters, seen twice or
  more), and a share of **pseudo-words** made from other such words by changing one consonant
  letter (as the probe's non-words are made), kept only when they are no training word;
* never a spot-the-word item: every word and non-word of :mod:`speechlm.data.probe_pairs` is
  left out, so the tokenizer never heard the probe's words alone;
* **voices**: the training identities of the corpus whose engine reports phone times (flite,
  festival, MBROLA; :attr:`speechlm.data.voices.BaseVoice.aligned`), never a held-out voice;
  each item is spoken by one identity drawn with a fixed seed, exactly as a corpus utterance
  (:func:`speechlm.data.build.synth_chunk`: FLAC, ``.phn`` and ``.wbd`` beside it).

``speechlm corpus words --corpus data/corpus-v2 --out data/words-v2`` writes ``audio/``,
``train.tsv`` (with ``.spk`` and ``.wrd``) and ``words.json``; an interrupted build resumes.
The phone trainer reads it with ``data.words`` / ``data.p_words``
(:func:`speechlm.train.phone.plan_words`).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import DataError

log = logging.getLogger(__name__)

CONSONANTS = "bcdfghjklmnpqrstvwxz"
_WORD = re.compile(r"^[a-z]{3,}$")
CHUNK = 25  # items per synthesis task


def probe_items() -> set[str]:
    """Every word and non-word of the lexical probe, and every word of the syntactic probe's
    sentences, normalised."""
    from speechlm.data.probes import normalize_text, probe_pairs

    out: set[str] = set()
    for kind in ("lexical", "syntactic"):
        for p in probe_pairs(kind):
            out.update(normalize_text(p.good).split())
            out.update(normalize_text(p.bad).split())
    return out


def vocabulary(corpus: str | os.PathLike, min_count: int = 2) -> list[str]:
    """The alphabetic words of 3+ letters of ``corpus``'s training transcripts seen at least
    ``min_count`` times, sorted."""
    from speechlm.data.probes import normalize_text

    f = Path(corpus) / "train.wrd"
    if not f.is_file():
        raise DataError(f"{f} not found: the word set is drawn from a corpus's transcripts")
    counts = collections.Counter(normalize_text(f.read_text(encoding="utf-8")).split())
    return sorted(w for w, c in counts.items() if c >= min_count and _WORD.match(w))


def pseudo_word(word: str, rng: np.random.Generator) -> str:
    """``word`` with one consonant letter (drawn) replaced by another consonant."""
    spots = [i for i, ch in enumerate(word) if ch in CONSONANTS]
    if not spots:
        return word
    i = int(spots[rng.integers(len(spots))])
    others = [c for c in CONSONANTS if c != word[i]]
    return word[:i] + others[int(rng.integers(len(others)))] + word[i + 1:]


def draw_items(vocab: list[str], count: int, pseudo: float, seed: int,
               exclude: set[str]) -> list[tuple[str, str]]:
    """``count`` distinct items ``(text, "word" | "pseudo")``: about ``pseudo`` of them
    pseudo-words (:func:`pseudo_word` of a vocabulary word, neither a vocabulary word nor in
    ``exclude``, no letter thrice in a row), the rest vocabulary words not in ``exclude``."""
    rng = np.random.default_rng([seed, 41])
    words = [w for w in vocab if w not in exclude]
    known = set(vocab) | exclude
    n_pseudo = int(round(count * pseudo))
    n_words = min(count - n_pseudo, len(words))
    picked = [words[i] for i in rng.permutation(len(words))[:n_words]]
    out = [(w, "word") for w in picked]
    seen = set(picked)
    tries = 0
    while len(out) < n_words + n_pseudo and tries < 50 * max(1, n_pseudo):
        tries += 1
        w = pseudo_word(words[int(rng.integers(len(words)))], rng)
        if w in known or w in seen or re.search(r"(.)\1\1", w):
            continue
        seen.add(w)
        out.append((w, "pseudo"))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def training_identities(corpus: str | os.PathLike) -> list:
    """The corpus's training identities (``train.spk``) whose engine reports phone times, in
    name order (:class:`speechlm.data.voices.Identity`)."""
    from speechlm.data.voices import all_identities

    f = Path(corpus) / "train.spk"
    if not f.is_file():
        raise DataError(f"{f} not found: the word set is spoken by a corpus's training voices")
    names = set(f.read_text(encoding="utf-8").split())
    idents = [i for i in all_identities() if i.name in names and i.base.aligned
              and not i.held_out]
    if not idents:
        raise DataError(f"{corpus} has no training identity of an aligned engine (flite, "
                        "festival, MBROLA)")
    return sorted(idents, key=lambda i: i.name)


def build_words(corpus: str | os.PathLike, out: str | os.PathLike, count: int = 4000,
                pseudo: float = 0.3, seed: int = 0, jobs: int | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Synthesize ``count`` isolated items into ``out`` (see the module docstring) and write its
    manifest. Existing audio is kept, so a killed build resumes with the same items.

    Returns:
        The set's card (also ``out/words.json``): counts, voices, what was left out.

    Raises:
        DataError: no transcripts or speakers in ``corpus``, ``count`` < 1, ``pseudo`` outside
            [0, 1], or a synthesizer that is missing.
    """
    from speechlm.data.build import synth_chunk
    from speechlm.data.corpus import run_tasks
    from speechlm.data.manifest import Utterance, read_phn, write_manifest
    from speechlm.data.probes import WorldVoice, _check_world_tools
    from speechlm.io import write_text_atomic

    if count < 1:
        raise DataError(f"--count {count}: expected at least one item")
    if not 0 <= pseudo <= 1:
        raise DataError(f"--pseudo {pseudo}: expected a share in [0, 1]")
    out = Path(out)
    vocab = vocabulary(corpus)
    exclude = probe_items()
    idents = training_identities(corpus)
    _check_world_tools([WorldVoice(b) for b in sorted({i.base.name for i in idents})])
    items = draw_items(vocab, count, pseudo, seed, exclude)
    rng = np.random.default_rng([seed, 43])
    who = rng.integers(len(idents), size=len(items))
    by_ident: dict[int, list[tuple[str, str]]] = collections.defaultdict(list)
    for k, (text, _) in enumerate(items):
        by_ident[int(who[k])].append((f"w{k:05d}", text))
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    tasks = [(idents[i], chunk[j:j + CHUNK], str(audio))
             for i, chunk in sorted(by_ident.items()) for j in range(0, len(chunk), CHUNK)]
    tasks.sort(key=lambda t: t[0].base.engine != "festival")  # slowest first
    t0 = time.perf_counter()
    run_tasks(synth_chunk, tasks, jobs, "words", "wav", progress)
    utts, kinds = [], collections.Counter()
    for k, (text, kind) in enumerate(items):
        ident = idents[int(who[k])]
        path = audio / ident.name / f"w{k:05d}.flac"
        phn = path.with_suffix(".phn")
        if not (path.exists() and phn.exists()):
            raise DataError(f"synthesis left no {path} or its .phn")
        n = read_phn(phn)[-1][1]  # the alignment covers the audio: its end is the length
        utts.append(Utterance(f"{ident.name}/w{k:05d}", path.resolve(), int(n),
                              speaker=ident.name, text=text))
        kinds[kind] += 1
    write_manifest(out / "train.tsv", audio.resolve(), utts)
    seconds = sum(u.num_samples for u in utts) / 16000
    card = {"corpus": str(corpus), "items": len(utts), "words": kinds["word"],
            "pseudo_words": kinds["pseudo"], "seed": seed, "hours": round(seconds / 3600, 3),
            "identities": len({u.speaker for u in utts}),
            "base_voices": sorted({i.base.name for i in idents}),
            "vocabulary": len(vocab), "left_out_probe_words": len(exclude & set(vocab)),
            "build_s": round(time.perf_counter() - t0, 1)}
    write_text_atomic(out / "words.json", json.dumps(card, indent=2) + "\n")
    log.info("words: %d items (%d pseudo) in %d identities, %.2f h at %s", len(utts),
             kinds["pseudo"], card["identities"], seconds / 3600, out)
    return card


__all__ = ["build_words", "draw_items", "probe_items", "pseudo_word", "training_identities",
           "vocabulary"]
