"""Spoken probe pairs for the zero-shot LM probes (ZeroSpeech 2021 sWUGGY / sBLIMP style): the
pairs, their synthesis, and the ``pairs.tsv`` list that :mod:`speechlm.eval.probes` scores.

A probe pair is two spoken items that differ minimally: a real word and a non-word (lexical),
or a grammatical sentence and a minimally broken one (syntactic). The spoken items are made
with the same offline synthesizers and settings as the training corpus
(:mod:`speechlm.data.corpus`), so a probe tests the LM, not a change of recording conditions.
The word and sentence lists live in :mod:`speechlm.data.probe_pairs`; none of their words or
sentences is taken from the CMU ARCTIC prompts the corpus reads (:func:`check_not_in_training`).

Probes for a model trained on the world corpus (``corpus=``, :mod:`speechlm.data.voices`) keep
only the pairs whose good item uses words of that corpus's training transcripts (in-vocabulary:
the model could have learned them) and refuse any item that is a training or validation
sentence; they are spoken by the corpus's held-out engines (``pico_us``, ``piper_joe``,
``mbrola_us3``, ``pico_gb``), unperturbed, as the corpus renders them.

Layout written by :func:`build_probe_set`::

    OUT/<kind>/<voice>/<pair_id>_a.wav   the good item (word / grammatical sentence), 16 kHz mono
    OUT/<kind>/<voice>/<pair_id>_b.wav   the bad item (non-word / ungrammatical sentence)
    OUT/<kind>/<voice>/<pair_id>_?.phn   ARPAbet phones "start end phone" in samples, for the
                                         world corpus's voices whose engine reports them
                                         (flite, festival, MBROLA: speechlm.data.oracle)
    OUT/<kind>/pairs.tsv                 header, then one line per pair and voice:
                                         pair_id, voice, good_path, bad_path, good_text, bad_text
                                         (paths relative to the folder of pairs.tsv)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from speechlm.data.corpus import (
    FESTIVAL_CHUNK,
    Sentence,
    Voice,
    check_tools,
    default_text_path,
    read_sentences,
    run_tasks,
    synth_task,
    voices_by_name,
)
from speechlm.data.probe_pairs import LEXICAL_PAIRS, SYNTACTIC_PAIRS
from speechlm.errors import DataError
from speechlm.io import write_text_atomic

__all__ = ["DEFAULT_PROBE_VOICES", "PAIRS_COLUMNS", "PROBE_KINDS", "ProbePair", "WorldVoice",
           "build_probe_set", "check_not_in_training", "in_vocabulary", "normalize_text",
           "probe_pairs", "read_pairs"]

log = logging.getLogger(__name__)

PROBE_KINDS = ("lexical", "syntactic")
DEFAULT_PROBE_VOICES = ("flite_slt", "flite_rms", "fest_kal")
PAIRS_COLUMNS = ("pair_id", "voice", "good_path", "bad_path", "good_text", "bad_text")
_ID_PREFIX = {"lexical": "lex", "syntactic": "syn"}
_FLITE_CHUNK = 20  # items per flite / espeak task (one process per item, so only for balance)
_NON_WORD = re.compile(r"[^a-z0-9']+")


@dataclasses.dataclass(frozen=True)
class ProbePair:
    """One minimal pair of a probe.

    Attributes:
        id: stable id, ``lex0001`` / ``syn0001`` (the position in the list, from 1).
        good: the real word or grammatical sentence.
        bad: the non-word or ungrammatical sentence.
        phenomenon: what the syntactic pair tests (``agreement``, ``word_order`` ...);
            ``lexical`` for word pairs.
    """

    id: str
    good: str
    bad: str
    phenomenon: str


def _check_kind(kind: str) -> None:
    if kind not in PROBE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PROBE_KINDS)}, got {kind!r}")


def probe_pairs(kind: str) -> list[ProbePair]:
    """The pairs of a probe, in list order.

    Args:
        kind: ``"lexical"`` (word / non-word) or ``"syntactic"`` (sentence pairs).

    Returns:
        One :class:`ProbePair` per entry of :mod:`speechlm.data.probe_pairs`.
    """
    _check_kind(kind)
    prefix = _ID_PREFIX[kind]
    if kind == "lexical":
        rows = [(good, bad, "lexical") for good, bad in LEXICAL_PAIRS]
    else:
        rows = list(SYNTACTIC_PAIRS)
    return [ProbePair(f"{prefix}{i:04d}", good, bad, phen)
            for i, (good, bad, phen) in enumerate(rows, 1)]


def normalize_text(text: str) -> str:
    """Lower case, punctuation (but apostrophes) to spaces, single spaces, no outer spaces."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def check_not_in_training(texts: Iterable[str],
                          prompts: Iterable[str] | str | os.PathLike | None = None) -> list[str]:
    """The texts that occur in a training prompt.

    A text occurs in a prompt when, after :func:`normalize_text` of both, it is a substring of
    the prompt that starts and ends at word boundaries. So a sentence is flagged when a prompt
    contains it (``"the two men shook hands"`` is in ``"For the twentieth time that evening the
    two men shook hands."``), and a single word when any prompt uses that word (``"hand"`` is
    not flagged by ``"hands"``).

    Args:
        texts: words or sentences to check.
        prompts: the training prompts (strings), or a festival prompt file; default the CMU
            ARCTIC prompts of :func:`speechlm.data.corpus.default_text_path`.

    Returns:
        The offending texts, in input order (empty when none occurs in training).

    Raises:
        DataError: the prompt file is missing or malformed.
    """
    if prompts is None or isinstance(prompts, (str, os.PathLike)):
        path = default_text_path() if prompts is None else Path(prompts)
        prompt_list = [s.text for s in read_sentences(path)]
    else:
        prompt_list = list(prompts)
    # one string with a sentinel between prompts, so a match never spans two prompts
    haystack = "|".join(f" {normalize_text(p)} " for p in prompt_list)
    bad = []
    for text in texts:
        needle = normalize_text(text)
        if needle and f" {needle} " in haystack:
            bad.append(text)
    return bad


@dataclasses.dataclass(frozen=True)
class WorldVoice:
    """A base voice of the world corpus (:mod:`speechlm.data.voices`), unperturbed."""

    name: str
    engine: str = "world"


def _world_names() -> set[str]:
    from speechlm.data.voices import BASE_VOICES

    return {b.name for b in BASE_VOICES}


def _resolve_voices(voices: Iterable[str | Voice]) -> list[Voice | WorldVoice]:
    out: list[Voice | WorldVoice] = []
    world = _world_names()
    for v in voices:
        if isinstance(v, (Voice, WorldVoice)):
            out.append(v)
        elif v in world:
            out.append(WorldVoice(v))
        else:
            out.append(voices_by_name([v])[0])
    names = [v.name for v in out]
    if not out or len(set(names)) != len(names):
        raise DataError(f"need one or more distinct voices, got {names}")
    return out


def _world_task(args: tuple[WorldVoice, list[Sentence], str]) -> int:
    """Render ``sentences`` in a world base voice into ``wav_dir/<voice>/<id>.wav`` (16 kHz
    PCM16, atomic); return how many were made."""
    import numpy as np
    import soundfile as sf

    from speechlm.audio import SAMPLE_RATE
    from speechlm.data.build import write_segments
    from speechlm.data.voices import Identity, Perturbation, base_voice, render
    from speechlm.io import atomic_path

    voice, sentences, wav_dir = args
    out_dir = Path(wav_dir) / voice.name
    out_dir.mkdir(parents=True, exist_ok=True)
    base = base_voice(voice.name)
    todo = [s for s in sentences if not (out_dir / f"{s.id}.wav").exists()
            or (base.aligned and not (out_dir / f"{s.id}.phn").exists())]
    if not todo:
        return 0
    ident = Identity(base, Perturbation())
    for s, syn in zip(todo, render(ident, [s.text for s in todo])):
        if syn.phones:  # the engine's alignment: the phone oracle scores with it
            write_segments(out_dir / f"{s.id}.phn", syn.phones, len(syn.audio))
        with atomic_path(out_dir / f"{s.id}.wav") as tmp:
            sf.write(tmp, np.asarray(syn.audio, np.float32), SAMPLE_RATE, subtype="PCM_16",
                     format="WAV")
    return len(todo)


def _check_world_tools(voices: Sequence[WorldVoice]) -> None:
    from speechlm.data.engines import engine
    from speechlm.data.voices import base_voice

    for v in voices:
        b = base_voice(v.name)
        eng = engine(b.engine)
        why = eng.missing()
        if why is None and eng.voice_missing(b.voice):
            why = f"{b.engine}: voice {b.voice} is not installed"
        if why:
            raise DataError(f"cannot speak probe voice {v.name}: {why}")


def _corpus_words(corpus: Path) -> tuple[set[str], list[str]]:
    """The words of a corpus's training transcripts, and its train + valid sentences."""
    sentences = []
    for split in ("train", "valid"):
        f = corpus / f"{split}.wrd"
        if not f.is_file():
            raise DataError(f"{f} not found: probes for a corpus need its transcripts")
        sentences += [line.strip() for line in f.read_text(encoding="utf-8").splitlines()]
    train = (corpus / "train.wrd").read_text(encoding="utf-8")
    return set(normalize_text(train).split()), sentences


def in_vocabulary(pairs: Sequence[ProbePair], words: set[str]) -> list[ProbePair]:
    """The pairs whose good item uses only ``words`` (and, for a word pair, whose non-word is
    not one of them)."""
    return [p for p in pairs if all(w in words for w in normalize_text(p.good).split())
            and (p.phenomenon != "lexical" or normalize_text(p.bad) not in words)]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def build_probe_set(out_dir: str | os.PathLike,
                    voices: Sequence[str | Voice] = DEFAULT_PROBE_VOICES,
                    kind: str = "lexical", jobs: int | None = None, progress: bool = True,
                    *, limit: int | None = None, corpus: str | os.PathLike | None = None
                    ) -> Path:
    """Synthesize both items of every pair of a probe in each voice, and write ``pairs.tsv``.

    Each item is made exactly as a corpus utterance (:func:`speechlm.data.corpus.synth_task`:
    the engine's voice, speaking rate and sox pitch shift, 16 kHz mono PCM16). Existing wav files
    are kept, so an interrupted build resumes; the output is the same bytes on every run.

    Args:
        out_dir: root of the probe sets; this kind goes to ``out_dir/<kind>``.
        voices: voice names of :data:`speechlm.data.corpus.DEFAULT_VOICES` (or :class:`Voice`
            objects).
        kind: ``"lexical"`` or ``"syntactic"``.
        jobs: worker processes (default: all cores, at most one per task).
        progress: show a progress bar on stderr.
        limit: build only the first ``limit`` pairs (for tests and quick looks).
        corpus: a world corpus directory: keep the pairs in its training vocabulary and refuse
            items that are its training or validation sentences (instead of the ARCTIC check).

    Returns:
        The path of ``out_dir/<kind>/pairs.tsv``.

    Raises:
        DataError: unknown voices, missing synthesizer programs, or a probe text that occurs in
            the training prompts.
    """
    _check_kind(kind)
    voice_list = _resolve_voices(voices)
    pairs = probe_pairs(kind)
    if corpus is not None:
        words, sentences = _corpus_words(Path(corpus))
        pairs = in_vocabulary(pairs, words)
    if limit is not None:
        pairs = pairs[: max(0, limit)]
    if not pairs:
        raise DataError("no pairs to build (limit < 1, or none in the corpus's vocabulary)")
    if corpus is not None and kind == "syntactic":  # (word pairs: in_vocabulary above)
        clash = check_not_in_training([t for p in pairs for t in (p.good, p.bad)], sentences)
        if clash:
            raise DataError(f"{len(clash)} {kind} probe text(s) occur in {corpus}'s training "
                            f"or validation sentences: {', '.join(repr(t) for t in clash[:5])}")
    elif corpus is None:
        _guard_training_overlap(kind, pairs)
    check_tools([v for v in voice_list if isinstance(v, Voice)])
    _check_world_tools([v for v in voice_list if isinstance(v, WorldVoice)])
    root = Path(out_dir) / kind
    root.mkdir(parents=True, exist_ok=True)

    items = [Sentence(f"{p.id}_{side}", text) for p in pairs
             for side, text in (("a", p.good), ("b", p.bad))]
    tasks = []
    for v in voice_list:
        chunk = FESTIVAL_CHUNK if v.engine in ("festival", "world") else _FLITE_CHUNK
        for i in range(0, len(items), chunk):
            tasks.append((v, items[i : i + chunk], str(root)))
    tasks.sort(key=lambda t: t[0].engine not in ("festival", "world"))  # slowest first
    t0 = time.perf_counter()
    made = sum(run_tasks(_task, tasks, jobs, f"probe {kind}", "wav", progress))
    lines = ["\t".join(PAIRS_COLUMNS)]
    for v in voice_list:
        for p in pairs:
            good, bad = root / v.name / f"{p.id}_a.wav", root / v.name / f"{p.id}_b.wav"
            for f in (good, bad):
                if not f.exists():
                    raise DataError(f"synthesis left no {f}")
            lines.append("\t".join((p.id, v.name, _rel(good, root), _rel(bad, root),
                                    p.good, p.bad)))
    tsv = root / "pairs.tsv"
    write_text_atomic(tsv, "\n".join(lines) + "\n")
    items_manifest(tsv)
    log.info("%s probe: %d pairs x %d voices at %s (%d wav files made, %.1f s)", kind,
             len(pairs), len(voice_list), root, made, time.perf_counter() - t0)
    return tsv


def items_manifest(pairs_tsv: str | os.PathLike) -> Path | None:
    """Write ``items.tsv`` beside ``pairs_tsv``: a manifest of the probe items that have a
    reference alignment (``.phn``), with the voice as speaker (``.spk``) and the item's text
    (``.wrd``), so that ``speechlm eval tokenizer --manifest`` judges a tokenizer's spelling of
    them. Returns its path, or None when no item is aligned (nothing is written)."""
    import soundfile as sf

    from speechlm.data.manifest import Utterance, write_manifest

    root = Path(pairs_tsv).parent
    utts = []
    for row in read_pairs(pairs_tsv):
        for side in ("good", "bad"):
            path = Path(row[f"{side}_path"])
            if path.with_suffix(".phn").exists():
                utts.append(Utterance(f"{row['voice']}/{path.stem}", path.resolve(),
                                      sf.info(str(path)).frames,
                                      speaker=row["voice"], text=row[f"{side}_text"]))
    if not utts:
        return None
    write_manifest(root / "items.tsv", root.resolve(), utts)
    return root / "items.tsv"


def _task(args) -> int:
    return _world_task(args) if isinstance(args[0], WorldVoice) else synth_task(args)


def _guard_training_overlap(kind: str, pairs: Sequence[ProbePair]) -> None:
    """Refuse probe texts that the LM may have heard in training (skipped without the prompts)."""
    texts = [p.good for p in pairs]
    if kind == "syntactic":
        texts += [p.bad for p in pairs]
    path = default_text_path()
    if not path.exists():
        log.warning("training prompts not found at %s; not checking the probe texts against "
                    "them", path)
        return
    clash = check_not_in_training(texts, path)
    if clash:
        raise DataError(f"{len(clash)} {kind} probe text(s) occur in the training prompts: "
                        f"{', '.join(repr(t) for t in clash[:5])}")


def read_pairs(pairs_tsv: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a ``pairs.tsv``; the paths come back absolute (as :class:`Path`).

    Raises:
        DataError: the file is missing, has another header, or a line has the wrong number of
            fields.
    """
    pairs_tsv = Path(pairs_tsv)
    if not pairs_tsv.exists():
        raise DataError(f"probe pair list not found: {pairs_tsv} (build it with "
                        "speechlm.data.probes.build_probe_set)")
    lines = pairs_tsv.read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != PAIRS_COLUMNS:
        raise DataError(f"{pairs_tsv}: expected the header {' '.join(PAIRS_COLUMNS)}")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(PAIRS_COLUMNS):
            raise DataError(f"{pairs_tsv}:{n}: expected {len(PAIRS_COLUMNS)} tab-separated "
                            f"fields, got {len(fields)}")
        row: dict[str, Any] = dict(zip(PAIRS_COLUMNS, fields))
        for key in ("good_path", "bad_path"):
            p = Path(row[key])
            row[key] = p if p.is_absolute() else pairs_tsv.parent / p
        rows.append(row)
    return rows
