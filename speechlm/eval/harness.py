"""What the report harnesses (``eval resynth``, ``eval continue``) share.

Each harness is a small task, as whisper's ``DecodingTask``: **select** the items
(:func:`select_items`), **run** the model on one item, **score** its outputs with the judges,
and **aggregate** rows into groups (:func:`by_group`: seen and held-out voices, and one row per
voice). This module holds the steps that do not depend on the model: item selection (a corpus
split, a manifest, or a folder of the user's own recordings), the voice groups, calibrated
speaker similarity (:class:`SpeakerReferences`), and number formatting for the tables.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import AudioError, DataError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
TEXTS_FILE = "texts.tsv"  # in a --wav-dir: file<TAB>transcript[<TAB>speaker], one per line
SEEN, HELD_OUT = "training voices", "held-out voices"
REFS_PER_VOICE = 2  # utterances per voice embedded as speaker references


@dataclasses.dataclass(frozen=True)
class Item:
    """One utterance to evaluate.

    Attributes:
        name: unique name (relative path in a corpus or folder).
        path: the audio file.
        voice: speaker / voice identity.
        text: the transcript, when known.
        held_out: the voice was never heard in training.
    """

    name: str
    path: Path
    voice: str
    text: str | None = None
    held_out: bool = False


def _folder_items(root: Path) -> list[Item]:
    """A folder of recordings: ``DIR/*.wav`` (one speaker: the folder's name) or
    ``DIR/<speaker>/*.wav``; transcripts from ``texts.tsv`` or a same-name ``.txt``."""
    texts: dict[str, tuple[str, str | None]] = {}
    tsv = root / TEXTS_FILE
    if tsv.is_file():
        with tsv.open(encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
                if not row or not row[0].strip():
                    continue
                if len(row) < 2:
                    raise DataError(f"{tsv}:{n}: expected 'file<TAB>transcript[<TAB>speaker]'")
                texts[row[0].strip()] = (row[1].strip(), row[2].strip() if len(row) > 2 else None)
    items = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        rel = path.relative_to(root).as_posix()
        text, speaker = texts.get(rel) or texts.get(path.name) or texts.get(path.stem) or (
            None, None)
        if text is None and path.with_suffix(".txt").is_file():
            text = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        voice = speaker or (path.parent.name if path.parent != root else root.name)
        items.append(Item(rel, path, voice, text or None))
    if not items:
        raise DataError(f"{root} has no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return items


def select_items(data: str | os.PathLike, corpus: str | os.PathLike | None, per_voice: int,
                 seed: int) -> list[Item]:
    """The utterances to evaluate: ``per_voice`` of each voice (0: all), drawn with ``seed``.

    ``data`` is a split name of ``corpus`` (``test``), a manifest ``.tsv`` (with its ``.wrd``
    and ``.spk``), or a folder of recordings (see :func:`_folder_items`).
    """
    from speechlm.data.manifest import read_manifest, resolve_manifest

    p = Path(data)
    if p.is_dir():
        items = _folder_items(p)
    else:
        items = [Item(u.name, Path(u.path), u.speaker or u.name.split("/")[0], u.text)
                 for u in read_manifest(resolve_manifest(data, corpus))]
    if not per_voice:
        return items
    rng = np.random.default_rng(seed)
    out = []
    for voice, group in sorted(group_by(items, lambda it: it.voice).items()):
        pick = sorted(rng.choice(len(group), size=min(per_voice, len(group)), replace=False))
        out += [group[i] for i in pick]
    return out


def reference_pool(items: Sequence[Item], reference_voices: str | os.PathLike | None,
                   corpus: str | os.PathLike | None, seed: int) -> list[Item]:
    """``items`` and, with ``reference_voices`` (a folder, split or manifest as ``data`` of
    :func:`select_items`), every utterance of those voices: the pool of
    :class:`SpeakerReferences`, where they serve only as the calibration's *other* voices
    (e.g. other real speakers beside one real voice, whose report would otherwise have no
    other voice to calibrate against). A reference voice named as an evaluated one is refused:
    it would be taken for that voice's own second utterances."""
    if not reference_voices:
        return list(items)
    extra = select_items(reference_voices, corpus, 0, seed)
    clash = sorted({it.voice for it in extra} & {it.voice for it in items})
    if clash:
        raise DataError(f"--reference-voices {reference_voices}: voice(s) also evaluated: "
                        f"{', '.join(clash[:5])}")
    return [*items, *extra]


def mark_held_out(items: Iterable[Item], training: dict[str, Any]) -> list[Item]:
    """Mark each item's voice as held out when the model never trained on it: a voice not
    among ``training['train_voices']`` when the model records them, else one of
    ``training['holdout_voices']``."""
    trained = training.get("train_voices")
    held = set(training.get("holdout_voices") or [])
    return [dataclasses.replace(it, held_out=(it.voice not in trained) if trained
                                else it.voice in held) for it in items]


def group_by(rows: Iterable[Any], key: Callable[[Any], str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def by_group(rows: Sequence[dict[str, Any]], aggregate: Callable[[list[dict]], dict]
             ) -> tuple[dict[str, dict], dict[str, dict]]:
    """(``{"training voices": ..., "held-out voices": ...}``, ``{voice: ...}``): ``aggregate``
    of the rows of each group that has rows (rows carry ``voice`` and ``held_out``)."""
    groups = {SEEN: [r for r in rows if not r["held_out"]],
              HELD_OUT: [r for r in rows if r["held_out"]]}
    voices = group_by(rows, lambda r: r["voice"])
    return ({k: aggregate(v) for k, v in groups.items() if v},
            {v: aggregate(voices[v]) for v in sorted(voices)})


def mean(xs: Iterable[float | None]) -> float | None:
    """Mean of the finite values, rounded to 4 places; None when there are none."""
    xs = [float(x) for x in xs if x is not None and np.isfinite(x)]
    return round(float(np.mean(xs)), 4) if xs else None


def finite(x: float | None, digits: int = 4) -> float | None:
    """``x`` rounded, or None for None / NaN / inf (JSON has no NaN)."""
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def safe(judge: Callable[..., Any], *args: Any) -> Any:
    """A judge's score, or None when it refuses the audio (silent or too short)."""
    try:
        return judge(*args)
    except AudioError as err:
        log.warning("judge skipped: %s", err)
        return None


def fmt(x: float | None, spec: str = ".3f") -> str:
    """A table cell: ``-`` for a missing value."""
    return "-" if x is None else format(x, spec)


class SpeakerReferences:
    """Speaker embeddings of a few utterances of every voice of an evaluation set, so each
    "similarity to the prompt" comes with its calibration
    (:func:`speechlm.eval.calibration.calibrate_similarity`): the output's similarity to the
    *other* voices, and the similarity of two utterances of the prompt's own voice.

    Args:
        judge: a :class:`speechlm.eval.judges.SpeakerJudge`.
        items: the pool to draw references from (all utterances of the evaluated set).
        load: path -> ``[T]`` waveform at ``sr``.
        sr: sample rate.
        per_voice: utterances embedded per voice.
        seed: which ones.
    """

    def __init__(self, judge: Any, items: Sequence[Item], load: Callable[[Path], Any], sr: int,
                 per_voice: int = REFS_PER_VOICE, seed: int = 0):
        self.judge, self.sr = judge, sr
        rng = np.random.default_rng(seed)
        self.refs: dict[str, list[tuple[str, np.ndarray]]] = {}
        for voice, group in sorted(group_by(items, lambda it: it.voice).items()):
            # one more than needed, so a voice keeps per_voice refs besides the prompt itself
            pick = sorted(rng.choice(len(group), size=min(per_voice + 1, len(group)),
                                     replace=False))
            embs = []
            for i in pick:
                e = safe(judge.embed, load(group[i].path), sr, group[i].name)
                if e is not None:
                    embs.append((group[i].name, e))
            if embs:
                self.refs[voice] = embs

    def calibrate(self, output: Any, prompt: Any, voice: str, exclude: str):
        """The :class:`~speechlm.eval.calibration.SpeakerCalibration` of ``output`` against
        ``prompt`` (an utterance named ``exclude`` of ``voice``); None when the set has no
        other voice or no second utterance of ``voice``, or a judge refuses the audio."""
        from speechlm.eval.calibration import calibrate_similarity

        own = [e for name, e in self.refs.get(voice, []) if name != exclude][:REFS_PER_VOICE]
        others = {v: [e for _, e in refs[:REFS_PER_VOICE]]
                  for v, refs in self.refs.items() if v != voice}
        out_e = safe(self.judge.embed, output, self.sr, "output")
        prompt_e = safe(self.judge.embed, prompt, self.sr, "prompt")
        if not others or not own or out_e is None or prompt_e is None:
            return None
        return calibrate_similarity(out_e, prompt_e, others, [prompt_e, *own])


def calibration_summary(cals: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Means of the calibrated-similarity fields over outputs, and the share of each verdict."""
    cals = [c for c in cals if c]
    if not cals:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(cals)}
    for k in ("to_prompt", "others_mean", "others_max", "same_speaker", "margin", "position"):
        out[k] = mean(c[k] for c in cals)
    out["voice_kept_share"] = round(float(np.mean([c["verdict"] == "voice kept"
                                                   for c in cals])), 4)
    out["closest_to_prompt_share"] = round(float(np.mean([c["verdict"] != "voice lost"
                                                          for c in cals])), 4)
    return out


def cal_dict(cal: Any) -> dict[str, Any] | None:
    """A calibration as JSON (NaN -> None), or None."""
    if cal is None:
        return None
    return {k: (finite(v) if isinstance(v, float) else v) for k, v in cal.as_dict().items()}


__all__ = ["HELD_OUT", "Item", "SEEN", "SpeakerReferences", "by_group", "cal_dict",
           "calibration_summary", "finite", "fmt", "group_by", "mark_held_out", "mean", "safe",
           "select_items"]
