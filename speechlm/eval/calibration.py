"""Speaker similarity with its own calibration.

A raw "similarity to the prompt" is hard to read: Resemblyzer cosines of synthetic voices run
higher than those of real ones, and any two voices of one sex already score ~0.6-0.8. So every
similarity is reported with two references measured by the same judge:

* below: the similarity of the same output to *other* speakers of the test set (mean and max);
* above: the similarity of two different utterances of the prompt's own speaker.

The voice is kept when the output is clearly closer to the prompt than to any other speaker
(``VOICE_MARGIN``) and covers most of the way from the other speakers up to the prompt
speaker's own consistency (``VOICE_KEPT_POSITION``).

Example::

    e = judges.speaker.embed
    cal = calibrate_similarity(e(out, sr), e(prompt, sr),
                               others={"kal": [e(w, sr) for w in kal_wavs], ...},
                               own=[e(prompt, sr), e(other_utt_of_prompt_speaker, sr)])
    cal.to_prompt, cal.others_max, cal.same_speaker, cal.position, cal.verdict
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from speechlm.eval.content import position

__all__ = [
    "VOICE_KEPT_POSITION",
    "VOICE_MARGIN",
    "SpeakerCalibration",
    "Verdict",
    "calibrate_similarity",
    "calibrate_wavs",
    "cosine",
]

# "Clearly beats": the output must be closer to the prompt than to the *closest* other speaker
# by 0.05 cosine. Two different sentences of one voice already differ by a few hundredths
# (Resemblyzer, 2-4 s clips), so a smaller lead is within sentence-to-sentence noise.
VOICE_MARGIN = 0.05
# "Approaches the third": at least half the way from the mean other speaker (0) to the
# similarity of two utterances of the prompt's own speaker (1).
VOICE_KEPT_POSITION = 0.5

Verdict = Literal["voice kept", "closest to prompt", "voice lost"]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings ``[D]``; NaN if either is all zeros."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"embeddings differ in size: {a.shape[0]} and {b.shape[0]}")
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom > 0 else math.nan


@dataclass(frozen=True)
class SpeakerCalibration:
    """Similarity of one output to its prompt, with the references that calibrate it.

    Attributes:
        to_prompt: cosine of the output and the prompt.
        others_mean: mean over the other speakers of the output's similarity to each (the
            mean cosine to that speaker's utterances).
        others_max: the same, for the closest other speaker.
        closest_other: name of that speaker.
        same_speaker: mean cosine between different utterances of the prompt's speaker.
        n_others: number of other speakers.
    """

    to_prompt: float
    others_mean: float
    others_max: float
    closest_other: str
    same_speaker: float
    n_others: int

    @property
    def margin(self) -> float:
        """How much closer the output is to the prompt than to the closest other speaker."""
        return self.to_prompt - self.others_max

    @property
    def position(self) -> float:
        """``to_prompt`` between ``others_mean`` (0) and ``same_speaker`` (1); NaN if inverted."""
        return position(self.to_prompt, self.others_mean, self.same_speaker)

    @property
    def verdict(self) -> Verdict:
        """``"voice kept"`` when ``margin >= VOICE_MARGIN`` and ``position >=
        VOICE_KEPT_POSITION``; ``"closest to prompt"`` when only the margin holds; else
        ``"voice lost"``."""
        if not self.margin >= VOICE_MARGIN:  # NaN-safe
            return "voice lost"
        return "voice kept" if self.position >= VOICE_KEPT_POSITION else "closest to prompt"

    def as_dict(self) -> dict[str, float | int | str]:
        """JSON-able fields and derived figures."""
        return {"to_prompt": self.to_prompt, "others_mean": self.others_mean,
                "others_max": self.others_max, "closest_other": self.closest_other,
                "same_speaker": self.same_speaker, "n_others": self.n_others,
                "margin": self.margin, "position": self.position, "verdict": self.verdict}


def calibrate_similarity(output: np.ndarray, prompt: np.ndarray,
                         others: Mapping[str, Sequence[np.ndarray]],
                         own: Sequence[np.ndarray]) -> SpeakerCalibration:
    """Calibrate the output's similarity to its prompt (all speaker embeddings ``[D]``).

    Args:
        output: embedding of the output (a continuation or a resynthesis).
        prompt: embedding of the prompt.
        others: other speakers of the test set -> embeddings of some of their utterances
            (the prompt's own speaker must not be among them).
        own: embeddings of at least two *different* utterances of the prompt's speaker (the
            prompt itself may be one).

    Raises:
        ValueError: no other speaker, one with no utterance, or fewer than two ``own``.
    """
    if not others:
        raise ValueError("calibration needs at least one other speaker")
    if len(own) < 2:
        raise ValueError(f"calibration needs two utterances of the prompt's speaker, got "
                         f"{len(own)}")
    per_speaker = {}
    for name, embs in others.items():
        if len(embs) == 0:
            raise ValueError(f"other speaker {name!r} has no utterance")
        per_speaker[name] = float(np.mean([cosine(output, e) for e in embs]))
    closest = max(per_speaker, key=per_speaker.__getitem__)
    pairs = [cosine(own[i], own[j]) for i in range(len(own)) for j in range(i + 1, len(own))]
    return SpeakerCalibration(
        to_prompt=cosine(output, prompt), others_mean=float(np.mean(list(per_speaker.values()))),
        others_max=per_speaker[closest], closest_other=closest, same_speaker=float(np.mean(pairs)),
        n_others=len(per_speaker))


def calibrate_wavs(judge: Any, output: Any, prompt: Any, others: Mapping[str, Sequence[Any]],
                   own: Sequence[Any], sr: int) -> SpeakerCalibration:
    """:func:`calibrate_similarity` on waveforms ``[T]`` at ``sr``, embedded by ``judge``.

    ``judge`` is a :class:`~speechlm.eval.judges.SpeakerJudge` (anything with
    ``embed(wav, sr, name)``). A harness that calibrates many outputs against the same
    speakers should embed them once and call :func:`calibrate_similarity`.
    """
    return calibrate_similarity(
        judge.embed(output, sr, "output"), judge.embed(prompt, sr, "prompt"),
        {k: [judge.embed(w, sr, f"utterance of {k}") for w in v] for k, v in others.items()},
        [judge.embed(w, sr, "utterance of the prompt's speaker") for w in own])
