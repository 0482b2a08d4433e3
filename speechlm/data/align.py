"""Forced alignment: phone labels for the corpus voices whose engine reports none.

Only festival, flite and MBROLA (and Piper, held out) say where their phones are, so a phone
encoder learns from 12 of the world corpus's 27 training voices; the espeak-ng and RHVoice
utterances (15 voices, all with their text) have no labels. This module gives them labels:

1. the text is read into phones by ``espeak-ng --ipa`` in the voice's own dialect (for an
   espeak-ng voice exactly what it said; for RHVoice American English rules, an approximation),
   each word's IPA mapped to ARPAbet by :func:`speechlm.data.phones.ipa_segments`;
2. a phone encoder's frame log-probabilities are Viterbi-aligned to that sequence: each phone
   takes one frame or more, in order, with an optional silence before, between and after the
   words (:func:`viterbi_align`);
3. the path's mean log-probability per frame is its score; an alignment below ``min_score`` is
   not written (a wrong text or a failed read), and every written ``.phn`` lies in its own
   directory (``OUT/<utterance name>.phn``, TIMIT-style), never in the corpus.

    speechlm corpus align --corpus data/corpus-v2 --manifest train --out data/align-v2

The phone trainer reads them with ``data.forced_alignments = "data/align-v2"`` for utterances
without an engine ``.phn``. How good such labels are is measured where the truth is known:
``--manifest heldout --all`` aligns the held-out voices' utterances too, and the summary gives
the frame agreement of the forced and the free (argmax) labels with the engine's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from speechlm.audio import FRAME_SIZE, HOP_SIZE
from speechlm.data.manifest import Utterance, read_phn
from speechlm.data.phones import CLASSES, SILENCE, UNKNOWN, arpabet_of, ipa_segments
from speechlm.errors import DataError

DEFAULT_DIALECT = "en-us"
MIN_SCORE = -2.5  # mean log-probability per frame below which an alignment is not kept
NEG = -1e30
CLASS_ID = {p: i for i, p in enumerate(CLASSES)}


def voice_of(u: Utterance) -> str:
    """The base voice of ``u``'s speaker (its ``.spk`` name, else its folder's)."""
    from speechlm.data.voices import base_name_of

    return base_name_of(u.speaker or u.path.parent.name)


def dialect_of(u: Utterance, voices: dict[str, str] | None = None) -> str:
    """The espeak-ng voice that reads ``u``'s text: an espeak-ng voice's own dialect (``en-gb``
    from ``en-gb+m1``), else American English."""
    from speechlm.data.voices import BASE_VOICES

    table = voices if voices is not None else {v.name: v.voice for v in BASE_VOICES
                                               if v.engine == "espeak"}
    voice = table.get(voice_of(u))
    return voice.split("+", 1)[0] if voice else DEFAULT_DIALECT


def phonemize(text: str, dialect: str = DEFAULT_DIALECT) -> list[list[str]]:
    """The ARPAbet phones of each word of ``text`` as espeak-ng reads it in ``dialect``
    (symbols no table knows are dropped).

    Raises:
        DataError: espeak-ng is missing or fails.
    """
    try:
        out = subprocess.run(["espeak-ng", "-v", dialect, "-q", "--ipa", text],
                             capture_output=True, check=True, timeout=60).stdout.decode()
    except FileNotFoundError:
        raise DataError("forced alignment needs espeak-ng (apt-get install espeak-ng)") from None
    except subprocess.SubprocessError as err:
        raise DataError(f"espeak-ng -v {dialect} failed on {text[:40]!r}: {err}") from None
    words = []
    for word in out.split():
        segs = ipa_segments([(c, 1) for c in word], 1)
        phones = [p for _, _, p in segs if p not in (SILENCE, UNKNOWN)]
        if phones:
            words.append(phones)
    return words


def alignment_states(words: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The left-to-right states of a phone sequence: class ids ``[S]`` and whether each may be
    skipped ``[S]`` (the silences before, between and after the words)."""
    ids, optional = [CLASS_ID[SILENCE]], [True]
    for word in words:
        for p in word:
            ids.append(CLASS_ID[p])
            optional.append(False)
        ids.append(CLASS_ID[SILENCE])
        optional.append(True)
    return np.array(ids, dtype=np.int64), np.array(optional, dtype=bool)


def viterbi_align(logp: np.ndarray, ids: np.ndarray, optional: np.ndarray
                  ) -> tuple[np.ndarray, float] | None:
    """The best path of frames ``logp [F, C]`` through states ``ids [S]`` in order, each state
    held one frame or more, the ``optional`` ones skippable.

    Returns the state of every frame ``[F]`` and the path's mean log-probability per frame, or
    None when the frames are fewer than the states that cannot be skipped.
    """
    f, s = logp.shape[0], len(ids)
    if f < int((~optional).sum()) or s == 0:
        return None
    emit = logp[:, ids]  # [F, S]
    skip_ok = np.concatenate([[False, False], optional[1:-1]])  # s-2 -> s skips state s-1
    score = np.full(s, NEG)
    score[0] = emit[0, 0]
    if optional[0] and s > 1:
        score[1] = emit[0, 1]
    back = np.zeros((f, s), dtype=np.int8)  # 0: stayed, 1: from s-1, 2: from s-2
    for t in range(1, f):
        one = np.concatenate([[NEG], score[:-1]])
        two = np.where(skip_ok, np.concatenate([[NEG, NEG], score[:-2]]), NEG)
        moves = np.stack([score, one, two])  # [3, S]
        back[t] = moves.argmax(0)
        score = moves.max(0) + emit[t]
    ends = [s - 1] + ([s - 2] if optional[-1] and s > 1 else [])
    last = max(ends, key=lambda k: score[k])
    if score[last] <= NEG / 2:
        return None
    path = np.empty(f, dtype=np.int64)
    k = last
    for t in range(f - 1, -1, -1):
        path[t] = k
        k -= int(back[t, k])
    if k != 0 and not (k == 1 and optional[0]):  # the path must start at a start state
        return None
    return path, float(score[last]) / f


def path_segments(path: np.ndarray, ids: np.ndarray, num_samples: int
                  ) -> list[tuple[int, int, str]]:
    """TIMIT-style segments ``[(start, end, phone)]`` in samples of a frame path: frame ``t``'s
    centre (``t * HOP_SIZE + FRAME_SIZE // 2``) lies in its state's segment; the first segment
    starts at 0 and the last ends at ``num_samples``."""
    edge = FRAME_SIZE // 2 - HOP_SIZE // 2  # a frame's share starts half a hop before its centre
    segs: list[tuple[int, int, str]] = []
    start = 0
    for t in range(1, len(path) + 1):
        if t == len(path) or path[t] != path[t - 1]:
            end = num_samples if t == len(path) else t * HOP_SIZE + edge
            phone = CLASSES[int(ids[path[t - 1]])]
            if segs and segs[-1][2] == phone == SILENCE:
                segs[-1] = (segs[-1][0], end, phone)
            else:
                segs.append((start, end, phone))
            start = end
    return segs


def frame_labels(segs: list[tuple[int, int, str]], frames: int) -> np.ndarray:
    """Class id of each frame's centre under ``segs`` (-1: outside every segment or unknown)."""
    centres = np.arange(frames) * HOP_SIZE + FRAME_SIZE // 2
    out = np.full(frames, -1, dtype=np.int64)
    for a, b, p in segs:
        phone = arpabet_of(p)
        if phone is not None:
            out[(centres >= a) & (centres < b)] = CLASS_ID[phone]
    return out


@dataclasses.dataclass
class AlignResult:
    """One utterance's forced alignment."""

    name: str
    voice: str  # base voice
    score: float | None  # mean log-probability per frame (None: no path)
    segments: list[tuple[int, int, str]] | None
    forced_agreement: float | None = None  # frames agreeing with an engine .phn, where one is
    argmax_agreement: float | None = None  # the same for the encoder's argmax


def align_utterance(u: Utterance, logp: np.ndarray, dialect: str) -> AlignResult:
    """Align ``u`` given its frame log-probabilities ``logp [F, C]`` (classes :data:`CLASSES`),
    and where it has an engine ``.phn`` compare both labelings with it."""
    voice = voice_of(u)
    if not u.text:
        return AlignResult(u.name, voice, None, None)
    ids, optional = alignment_states(phonemize(u.text, dialect))
    found = viterbi_align(logp, ids, optional)
    if found is None:
        return AlignResult(u.name, voice, None, None)
    path, score = found
    segs = path_segments(path, ids, u.num_samples)
    res = AlignResult(u.name, voice, score, segs)
    if u.phn_path.exists():
        truth = frame_labels(read_phn(u.phn_path), len(path))
        known = truth >= 0
        if known.any():
            forced = frame_labels(segs, len(path))
            res.forced_agreement = float((forced[known] == truth[known]).mean())
            res.argmax_agreement = float((logp.argmax(-1)[known] == truth[known]).mean())
    return res


def write_phn(path: Path, segs: list[tuple[int, int, str]]) -> None:
    from speechlm.io import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(f"{a} {b} {p}\n" for a, b, p in segs))


def forced_phn_path(root: str | os.PathLike, u: Utterance) -> Path:
    """Where :func:`align_corpus` writes ``u``'s labels under ``root``."""
    return Path(root) / f"{u.name}.phn"


RECORDS = "align.tsv"  # one row per utterance tried: name, voice, score, kept, agreements
SUMMARY = "align.json"


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def read_records(out: str | os.PathLike) -> dict[str, dict]:
    """The rows of ``out/align.tsv`` by utterance (a later row wins: a resumed run's)."""
    path = Path(out) / RECORDS
    rows: dict[str, dict] = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        f = line.split("\t")
        if len(f) != 6:
            continue  # a row cut by a kill
        name, voice, score, kept, forced, argmax = f
        num = lambda v: float(v) if v else None  # noqa: E731
        rows[name] = {"voice": voice, "score": num(score), "kept": kept == "1",
                      "forced": num(forced), "argmax": num(argmax)}
    return rows


def summarise(rows: dict[str, dict], encoder: str, min_score: float) -> dict:
    """Per base voice: utterances tried, labels kept, mean score, and where engine labels
    exist the mean frame agreement of the forced and the argmax labels with them."""
    voices: dict[str, list[dict]] = {}
    for r in rows.values():
        voices.setdefault(r["voice"], []).append(r)
    out = {"encoder": encoder, "min_score": min_score, "voices": {}}
    for voice, rs in sorted(voices.items()):
        scores = [r["score"] for r in rs if r["score"] is not None]
        entry: dict = {"utterances": len(rs), "kept": sum(r["kept"] for r in rs),
                       "no_path": len(rs) - len(scores)}
        if scores:
            entry["mean_score"] = round(float(np.mean(scores)), 4)
        both = [r for r in rs if r["forced"] is not None]
        if both:
            entry["compared"] = len(both)
            entry["frame_agreement_forced"] = round(float(np.mean([r["forced"] for r in both])), 4)
            entry["frame_agreement_argmax"] = round(float(np.mean([r["argmax"] for r in both])), 4)
        out["voices"][voice] = entry
    return out


def align_corpus(items: Iterable[Utterance], encoder: str | os.PathLike, out: str | os.PathLike,
                 min_score: float = MIN_SCORE, include_aligned: bool = False,
                 progress: bool = True, name: str | None = None) -> dict:
    """Write forced ``.phn`` files for ``items`` (those without an engine ``.phn`` unless
    ``include_aligned``) into ``out``, a row per utterance into ``out/align.tsv`` and the
    summary (:func:`summarise`) into ``out/align.json``; an utterance with a row already is
    skipped, so a killed run resumes. ``name`` is the encoder's name in the summary (default:
    its path). Returns the summary.

    Raises:
        DataError: the encoder's phones are not :data:`CLASSES`, or espeak-ng is missing.
    """
    from tqdm import tqdm

    from speechlm.audio import load_audio
    from speechlm.io import write_text_atomic
    from speechlm.ssl.phone import PhoneEncoder

    enc = PhoneEncoder(encoder, "logprobs")
    if enc.phones != list(CLASSES):
        raise DataError(f"{encoder}: its phones are not this corpus's classes")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot write forced alignments to {out}: {err.strerror}") from None
    done = read_records(out)
    todo = [u for u in items if (include_aligned or not u.phn_path.exists())]
    with open(out / RECORDS, "a", encoding="utf-8") as log:
        for u in tqdm(todo, desc="align", unit="utt", disable=not progress):
            if u.name in done:
                continue
            with torch.inference_mode():
                logp = enc(load_audio(u.path)[None])[0].numpy()
            res = align_utterance(u, logp, dialect_of(u))
            kept = res.score is not None and res.score >= min_score
            if kept:  # the labels first: a row says they are there
                write_phn(forced_phn_path(out, u), res.segments)
            log.write("\t".join([u.name, res.voice, _fmt(res.score), "1" if kept else "0",
                                  _fmt(res.forced_agreement), _fmt(res.argmax_agreement)])
                      + "\n")
            log.flush()
    names = {u.name for u in todo}
    summary = summarise({k: v for k, v in read_records(out).items() if k in names},
                        name or str(encoder), min_score)
    write_text_atomic(out / SUMMARY, json.dumps(summary, indent=1) + "\n")
    return summary


def markdown(summary: dict, title: str = "Forced alignment") -> str:
    """A table of :func:`align_corpus`'s summary, a row per base voice."""
    def f(v) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = [f"# {title}", "", f"Encoder: `{summary['encoder']}`; labels kept where the path's "
             f"mean log-probability per frame is at least {summary['min_score']}. Frame "
             "agreement: the share of frames (at each 20 ms frame centre) whose label is the "
             "engine's, for the forced labels and for the encoder's argmax, where the engine "
             "gave labels.", "",
             "| voice | utterances | kept | mean score | agreement, forced | agreement, argmax |",
             "|---|---|---|---|---|---|"]
    for voice, e in summary["voices"].items():
        lines.append(f"| {voice} | {e['utterances']} | {e['kept']} | {f(e.get('mean_score'))} | "
                     f"{f(e.get('frame_agreement_forced'))} | "
                     f"{f(e.get('frame_agreement_argmax'))} |")
    return "\n".join(lines) + "\n"
