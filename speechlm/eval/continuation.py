"""Pure metrics for generated speech continuations (``speechlm eval continue``).

A continuation report takes a short speech prompt, lets the unit LM sample ``N`` continuations
and measures them. Everything here is numpy/torch only and deterministic:

* Repetition within one continuation: :func:`auto_bleu` (GSLM's auto-BLEU on units),
  :func:`longest_repeated_ngram`, and the loop detector :func:`is_loop` / :func:`loop_score`.
* Diversity across the ``N`` continuations of one prompt: :func:`self_bleu` (Zhu et al., 2018,
  "Texygen"), with a hand-written smoothed BLEU (:func:`bleu`).
* Audio: :func:`silence_mask`, :func:`silence_ratio`, :func:`is_silent`.
* Prosody: :func:`speaking_rate` (deduplicated units per second of non-silent time) and
  :func:`rate_ratio` (continuation rate / prompt rate).
* :func:`summarize` -- mean / std / min / max / n of a list of per-sample values, NaN-aware.

The unit-sequence metrics work on whatever ids they are given; pass *deduplicated* units
(``units.dedup().ids``), as GSLM does, so that a unit held for several frames is not counted as
repetition. :func:`is_loop` deduplicates its input itself.

Bad input raises :class:`ValueError` with a message saying what is wrong.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from speechlm.units import Units

__all__ = [
    "as_mono_wav",
    "auto_bleu",
    "bleu",
    "is_loop",
    "is_silent",
    "longest_repeated_ngram",
    "loop_score",
    "rate_ratio",
    "self_bleu",
    "silence_mask",
    "silence_ratio",
    "speaking_rate",
    "summarize",
]

IdsLike = Sequence[int] | np.ndarray | torch.Tensor
WavLike = np.ndarray | torch.Tensor

# Loop detector defaults (see :func:`is_loop` for why these values).
LOOP_TAIL_FRACTION = 0.5  # look at the last half of the deduplicated units
LOOP_MAX_PERIOD = 8  # longest repeating pattern, in deduplicated units (~0.3 s of speech)
LOOP_MIN_MATCH = 0.8  # fraction of tail positions that must repeat the unit p positions back
LOOP_MIN_TAIL = 16  # fewer deduplicated units than this in the tail: too short to judge

# Silence detector defaults (see :func:`silence_mask`).
SILENCE_FRAME_MS = 20.0  # one unit frame at 50 Hz
SILENCE_THRESHOLD_DB = -40.0  # relative to the loud reference frame energy
SILENCE_FLOOR_DB = -80.0  # frames quieter than this (dBFS of RMS) are always silent
SILENCE_REF_PERCENTILE = 95.0  # reference level: this percentile of the frame energies (dB)
SILENT_PEAK = 1e-3  # is_silent: peak amplitude below this is silence whatever the ratio
SILENT_RATIO = 0.9  # is_silent: more than this fraction of silent frames is "no speech"
_POWER_EPS = 1e-12  # floor on frame power before the log, so digital silence is -120 dB


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------


def _as_ids(ids: IdsLike, name: str = "ids") -> np.ndarray:
    """Return ``ids`` as a 1-D int64 numpy array, or raise ValueError naming ``name``."""
    if isinstance(ids, Units):
        ids = ids.ids
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of unit ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer unit ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def as_mono_wav(wav: WavLike, name: str = "wav") -> np.ndarray:
    """Return a ``[T]`` or ``[1, T]`` waveform as a 1-D float64 numpy array."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    arr = np.asarray(wav, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a mono waveform of shape [T] or [1, T], "
                         f"got shape {arr.shape}")
    return arr


def _ngrams(ids: np.ndarray, n: int) -> list[tuple[int, ...]]:
    """All ``len(ids) - n + 1`` contiguous n-grams of ``ids``, as tuples (empty if too short)."""
    if len(ids) < n:
        return []
    lst = ids.tolist()
    return list(zip(*(lst[k:] for k in range(n))))


def _check_order(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n-gram order must be a positive integer, got {n!r}")


# --------------------------------------------------------------------------------------------
# Repetition within one sequence
# --------------------------------------------------------------------------------------------


def auto_bleu(ids: IdsLike, n: int = 2) -> float:
    """GSLM-style auto-BLEU: the fraction of a sequence's n-grams that recur in the sequence.

    With ``L = len(ids)`` there are ``L - n + 1`` n-gram positions ``i`` (the n-gram
    ``ids[i : i + n]``). Position ``i`` counts as *repeated* when the same n-gram also starts at
    some other position ``j != i``; overlapping occurrences count (in ``[1 1 1]`` the bigram at
    0 and the one at 1 repeat each other). The score is::

        auto_bleu = #{i : exists j != i with ids[j : j + n] == ids[i : i + n]} / (L - n + 1)

    so it is 1 for a constant sequence, 0 when all n-grams are distinct, and higher for loopier
    continuations (Lakhotia et al., 2021, "Generative Spoken Language Modeling from Raw Audio").

    Args:
        ids: ``[L]`` unit ids, normally deduplicated.
        n: n-gram order.

    Returns:
        The repeated fraction in [0, 1]; NaN when ``L < n + 1`` (fewer than two n-grams, so
        nothing can repeat).
    """
    _check_order(n)
    arr = _as_ids(ids)
    if len(arr) < n + 1:
        return math.nan
    grams = _ngrams(arr, n)
    counts = Counter(grams)
    repeated = sum(c for c in counts.values() if c >= 2)
    return repeated / len(grams)


def longest_repeated_ngram(ids: IdsLike) -> int:
    """Length of the longest contiguous subsequence that occurs at least twice in ``ids``.

    Occurrences may overlap: ``[a a a a]`` gives 3 (``a a a`` at 0 and at 1); ``[a b c a b c]``
    gives 3; a sequence of distinct ids gives 0. Computed as the largest longest-common-prefix
    of adjacent suffixes in the suffix array (prefix doubling with numpy sorts, then Kasai's
    linear LCP), ``O(L log^2 L)``: a few milliseconds for ``L`` in the thousands.

    Args:
        ids: ``[L]`` unit ids, normally deduplicated.

    Returns:
        The length in units (0 for an empty sequence or one without a repeated id).
    """
    arr = _as_ids(ids)
    n = len(arr)
    if n < 2:
        return 0
    sa = _suffix_array(arr)
    rank = np.empty(n, dtype=np.int64)
    rank[sa] = np.arange(n)
    seq, sa_l, rank_l = arr.tolist(), sa.tolist(), rank.tolist()
    best = h = 0
    for i in range(n):  # Kasai et al. (2001): h drops by at most 1 per step, so O(n) in total
        r = rank_l[i]
        if r == 0:
            h = 0
            continue
        j = sa_l[r - 1]
        while i + h < n and j + h < n and seq[i + h] == seq[j + h]:
            h += 1
        if h > best:
            best = h
        if h:
            h -= 1
    return best


def _suffix_array(arr: np.ndarray) -> np.ndarray:
    """``[L]`` start positions of the suffixes of ``arr`` in lexicographic order."""
    n = len(arr)
    _, rank = np.unique(arr, return_inverse=True)
    rank = rank.astype(np.int64).reshape(-1)
    k = 1
    while True:
        second = np.full(n, -1, dtype=np.int64)  # a suffix that ends sorts first
        if k < n:
            second[: n - k] = rank[k:]
        order = np.lexsort((second, rank))
        key_r, key_s = rank[order], second[order]
        new = np.empty(n, dtype=np.int64)
        new[order] = np.concatenate(
            [[0], np.cumsum((key_r[1:] != key_r[:-1]) | (key_s[1:] != key_s[:-1]))])
        rank = new
        if rank.max() == n - 1 or k >= n:
            return order
        k *= 2


def loop_score(ids: IdsLike, *, tail_fraction: float = LOOP_TAIL_FRACTION,
               max_period: int = LOOP_MAX_PERIOD) -> tuple[int, float]:
    """The best short period of the tail of a unit sequence and how well it fits.

    ``ids`` is deduplicated first (runs collapsed to one id). With ``d`` the deduplicated
    sequence and ``s = floor(len(d) * (1 - tail_fraction))`` the start of its tail, the match
    of period ``p`` is the fraction of tail positions ``i >= max(s, p)`` with
    ``d[i] == d[i - p]`` (the look-back may reach before the tail). Periods ``2 ..
    max_period`` are tried (period 1 cannot match after deduplication); the tail must hold at
    least ``2 p`` positions for period ``p`` to be tried.

    Args:
        ids: ``[L]`` unit ids, frame-level or deduplicated.
        tail_fraction: fraction of the deduplicated sequence, at its end, that is scored.
        max_period: longest period tried, in deduplicated units.

    Returns:
        ``(period, match)``: the best period and its match fraction in [0, 1]; ``(0, 0.0)`` when
        the tail is too short to try any period.
    """
    if not 0.0 < tail_fraction <= 1.0:
        raise ValueError(f"tail_fraction must be in (0, 1], got {tail_fraction}")
    if max_period < 2:
        raise ValueError(f"max_period must be >= 2, got {max_period}")
    arr = _as_ids(ids)
    if len(arr) == 0:
        return 0, 0.0
    d = arr[np.concatenate([[True], arr[1:] != arr[:-1]])]
    start = int(math.floor(len(d) * (1.0 - tail_fraction)))
    tail_len = len(d) - start
    best_p, best = 0, 0.0
    for p in range(2, max_period + 1):
        if tail_len < 2 * p:
            break
        lo = max(start, p)
        match = float(np.mean(d[lo:] == d[lo - p : len(d) - p]))
        if match > best:
            best_p, best = p, match
    return best_p, best


def is_loop(ids: IdsLike, *, tail_fraction: float = LOOP_TAIL_FRACTION,
            max_period: int = LOOP_MAX_PERIOD, min_match: float = LOOP_MIN_MATCH,
            min_tail: int = LOOP_MIN_TAIL) -> bool:
    """Whether a continuation is "stuck in a loop": its tail repeats a short unit pattern.

    Heuristic (see :func:`loop_score`): deduplicate, take the last ``tail_fraction`` of the
    deduplicated units, and call it a loop when, for some period ``p`` in ``2 .. max_period``, at
    least ``min_match`` of the tail positions repeat the unit ``p`` positions back. Why these
    defaults:

    * ``tail_fraction = 0.5``: sampled continuations usually start fluent and fall into a loop
      part-way; what matters is that the loop has taken over by the end.
    * ``max_period = 8``: 8 deduplicated units is about 0.3 s of speech (HuBERT units at 50 Hz
      deduplicate to ~25-30 units/s), i.e. a syllable or two being stuttered; longer periods
      are word- or phrase-level repetition, which :func:`auto_bleu` and
      :func:`longest_repeated_ngram` measure instead.
    * ``min_match = 0.8``: in fluent speech ``d[i] == d[i - p]`` holds by chance for roughly
      ``1 / K`` of positions, and well under 0.3 even with the structure of real unit streams
      (K = 50-500); an exact loop scores 1.0. 0.8 tolerates one substituted unit in five.
    * ``min_tail = 16``: fewer tail units cannot show two periods of a pattern reliably.

    A single unit held for a long time (one run after deduplication) is *not* a loop here; it
    shows up as silence (:func:`silence_ratio`) or as a near-zero :func:`speaking_rate`.

    Args:
        ids: ``[L]`` unit ids, frame-level or deduplicated.
        tail_fraction: fraction of the deduplicated sequence, at its end, that is scored.
        max_period: longest period tried, in deduplicated units.
        min_match: match fraction at or above which the tail is a loop.
        min_tail: fewest deduplicated units the tail must hold; shorter tails are never loops.

    Returns:
        True when the tail is covered by a repeating pattern.
    """
    arr = _as_ids(ids)
    n_dedup = int(np.count_nonzero(arr[1:] != arr[:-1])) + 1 if len(arr) else 0
    tail_len = n_dedup - int(math.floor(n_dedup * (1.0 - tail_fraction)))
    if tail_len < min_tail:
        return False
    _, match = loop_score(arr, tail_fraction=tail_fraction, max_period=max_period)
    return match >= min_match


# --------------------------------------------------------------------------------------------
# Diversity across samples
# --------------------------------------------------------------------------------------------


def _counts(ids: np.ndarray, n: int) -> list[Counter]:
    """``[n]`` n-gram counters of orders ``1 .. n``."""
    return [Counter(_ngrams(ids, k)) for k in range(1, n + 1)]


def _bleu_from_counts(hyp: list[Counter], hyp_len: int, refs: list[list[Counter]],
                      ref_lens: list[int], n: int) -> float:
    if hyp_len == 0:
        return 0.0
    log_p = 0.0
    for k in range(1, n + 1):
        max_ref: Counter = Counter()
        for ref in refs:
            max_ref |= ref[k - 1]  # union of Counters = element-wise max
        clipped = sum(min(c, max_ref[g]) for g, c in hyp[k - 1].items())
        total = max(hyp_len - k + 1, 0)
        if k == 1:
            if clipped == 0:
                return 0.0
            log_p += math.log(clipped / total)
        else:  # add-one smoothing (Lin & Och, 2004): no zero precision on short sequences
            log_p += math.log((clipped + 1) / (total + 1))
    r = min(ref_lens, key=lambda x: (abs(x - hyp_len), x))  # closest length, ties -> shorter
    bp = 1.0 if hyp_len > r else math.exp(1.0 - r / hyp_len)
    return bp * math.exp(log_p / n)


def bleu(hypothesis: IdsLike, references: Sequence[IdsLike], n: int = 4) -> float:
    """Sentence BLEU-n of one unit sequence against references, with add-one smoothing.

    ``BLEU = BP * exp(mean_k log p_k)`` over orders ``k = 1 .. n``, where ``p_k`` is the modified
    (clipped) n-gram precision: each hypothesis n-gram counts at most as often as it occurs in
    any single reference. ``p_1`` is unsmoothed; for ``k > 1``, ``p_k = (m_k + 1) / (l_k + 1)``
    (BLEU+1, Lin & Och, 2004) so that short unit sequences without a matching 4-gram do not
    score 0. ``BP = exp(1 - r / c)`` when the hypothesis length ``c`` is at most the closest
    reference length ``r`` (ties: the shorter), else 1.

    Args:
        hypothesis: ``[L]`` unit ids.
        references: one or more ``[L_r]`` unit id sequences.
        n: highest n-gram order.

    Returns:
        BLEU in [0, 1]; 0 for an empty hypothesis or one sharing no unit with the references.
    """
    _check_order(n)
    if len(references) == 0:
        raise ValueError("bleu needs at least one reference")
    hyp = _as_ids(hypothesis, "hypothesis")
    refs = [_as_ids(r, "reference") for r in references]
    return _bleu_from_counts(_counts(hyp, n), len(hyp), [_counts(r, n) for r in refs],
                             [len(r) for r in refs], n)


def self_bleu(samples: Sequence[IdsLike], n: int = 4) -> float:
    """Self-BLEU: mean BLEU-n of each sample against all the other samples as references.

    Measures how alike the ``N`` continuations of one prompt are (Zhu et al., 2018, "Texygen"):
    1 when they are identical, near 0 when they share no units. Higher = less diverse. BLEU is
    :func:`bleu` (smoothed for orders above 1).

    Args:
        samples: ``N`` unit id sequences ``[L_i]``, normally deduplicated.
        n: highest n-gram order.

    Returns:
        The mean over samples in [0, 1]; NaN when ``N < 2``.
    """
    _check_order(n)
    arrs = [_as_ids(s, f"samples[{i}]") for i, s in enumerate(samples)]
    if len(arrs) < 2:
        return math.nan
    counts = [_counts(a, n) for a in arrs]
    lens = [len(a) for a in arrs]
    scores = []
    for i in range(len(arrs)):
        others = [j for j in range(len(arrs)) if j != i]
        scores.append(_bleu_from_counts(counts[i], lens[i], [counts[j] for j in others],
                                        [lens[j] for j in others], n))
    return float(np.mean(scores))


# --------------------------------------------------------------------------------------------
# Silence
# --------------------------------------------------------------------------------------------


def _frame_db(wav: np.ndarray, frame_len: int) -> np.ndarray:
    """``[F]`` RMS energy in dB of consecutive non-overlapping frames (last one may be short)."""
    n_full = len(wav) // frame_len
    power = np.square(wav[: n_full * frame_len]).reshape(n_full, frame_len).mean(axis=1)
    if len(wav) > n_full * frame_len:
        power = np.append(power, np.square(wav[n_full * frame_len:]).mean())
    return 10.0 * np.log10(power + _POWER_EPS)


def silence_mask(wav: WavLike, sr: int, frame_ms: float = SILENCE_FRAME_MS,
                 threshold_db: float = SILENCE_THRESHOLD_DB, ref_db: float | None = None,
                 floor_db: float = SILENCE_FLOOR_DB) -> np.ndarray:
    """Which frames of a waveform are silent, by an energy threshold relative to the clip.

    The waveform is cut into consecutive non-overlapping frames of ``round(sr * frame_ms /
    1000)`` samples (frame ``i`` covers samples ``[i F, (i + 1) F)``; the last frame may be
    short). A frame is silent when its RMS energy in dB, ``10 log10(mean(x^2))``, is below
    ``ref_db + threshold_db``, or below the absolute floor ``floor_db`` (dBFS), so that digital
    silence is silent whatever the reference. ``ref_db`` defaults to the 95th percentile of the
    clip's own frame energies -- a robust "loud speech" level that one click cannot move -- so
    the test does not depend on the recording gain.

    Args:
        wav: ``[T]`` or ``[1, T]`` mono waveform.
        sr: sample rate in Hz.
        frame_ms: frame length in milliseconds (20 ms = one unit frame at 50 Hz).
        threshold_db: level relative to ``ref_db`` below which a frame is silent (negative).
        ref_db: reference level in dB; None: the 95th percentile frame energy of ``wav``.
        floor_db: absolute level (dB relative to full scale 1.0) below which a frame is silent.

    Returns:
        ``[F]`` bool, True for silent frames, ``F = ceil(T / frame_len)``.
    """
    x = as_mono_wav(wav)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    frame_len = int(round(sr * frame_ms / 1000.0))
    if frame_len < 1:
        raise ValueError(f"frame_ms={frame_ms} is shorter than one sample at {sr} Hz")
    db = _frame_db(x, frame_len)
    if len(db) == 0:
        return np.zeros(0, dtype=bool)
    ref = float(np.percentile(db, SILENCE_REF_PERCENTILE)) if ref_db is None else ref_db
    return (db < ref + threshold_db) | (db < floor_db)


def silence_ratio(wav: WavLike, sr: int, frame_ms: float = SILENCE_FRAME_MS,
                  threshold_db: float = SILENCE_THRESHOLD_DB, ref_db: float | None = None,
                  floor_db: float = SILENCE_FLOOR_DB) -> float:
    """Fraction of a waveform's frames that are silent (see :func:`silence_mask`).

    Args:
        wav: ``[T]`` or ``[1, T]`` mono waveform.
        sr: sample rate in Hz.
        frame_ms: frame length in milliseconds.
        threshold_db: level relative to ``ref_db`` below which a frame is silent (negative).
        ref_db: reference level in dB; None: the 95th percentile frame energy of ``wav``.
        floor_db: absolute level (dBFS) below which a frame is always silent.

    Returns:
        The fraction in [0, 1]; NaN for an empty waveform.
    """
    mask = silence_mask(wav, sr, frame_ms, threshold_db, ref_db, floor_db)
    return float(mask.mean()) if len(mask) else math.nan


def is_silent(wav: WavLike, sr: int) -> bool:
    """Whether a clip holds (almost) no speech.

    True when its peak amplitude is below ``1e-3`` (-60 dBFS) or more than 90 % of its 20 ms
    frames are silent by :func:`silence_ratio` with the default thresholds. An empty clip is
    silent.

    Args:
        wav: ``[T]`` or ``[1, T]`` mono waveform.
        sr: sample rate in Hz.
    """
    x = as_mono_wav(wav)
    if len(x) == 0 or float(np.max(np.abs(x))) < SILENT_PEAK:
        return True
    return silence_ratio(x, sr) > SILENT_RATIO


# --------------------------------------------------------------------------------------------
# Speaking rate
# --------------------------------------------------------------------------------------------


def speaking_rate(units: Units, wav: WavLike | None = None, sr: int | None = None) -> float:
    """Deduplicated units per second of non-silent time.

    Without ``wav`` every frame counts as speech: ``len(units.dedup()) / units.seconds``. With
    ``wav`` (the audio the units were tokenized from, or a vocoder's output re-tokenized), a
    :func:`silence_mask` is computed with one frame per unit frame (``1000 / frame_rate`` ms);
    the rate is the number of deduplicated units whose run touches a non-silent frame, divided
    by the non-silent time. Unit frames past the end of the mask count as non-silent. This
    keeps silence units flickering in a pause from inflating the rate.

    Rates are only comparable when measured the same way: to compare a continuation with its
    prompt, re-tokenize both waveforms with the same tokenizer (same frame rate and unit space)
    and pass both waveforms (or neither), then take :func:`rate_ratio`.

    Args:
        units: unit sequence, frame-level or deduplicated (then its durations give the timing).
        wav: ``[T]`` or ``[1, T]`` waveform aligned with ``units``, or None.
        sr: sample rate of ``wav``; required with ``wav``.

    Returns:
        Units per second; NaN when there is no (non-silent) time.
    """
    d = units.dedup()
    durations = d.durations if d.durations is not None else torch.ones(len(d), dtype=torch.long)
    n_frames = int(durations.sum())
    if n_frames == 0:
        return math.nan
    if wav is None:
        return len(d) / d.seconds
    if sr is None:
        raise ValueError("speaking_rate needs sr when wav is given")
    mask = silence_mask(wav, sr, frame_ms=1000.0 / units.frame_rate)[:n_frames]
    speech = np.ones(n_frames, dtype=bool)
    speech[: len(mask)] = ~mask
    n_speech = int(speech.sum())
    if n_speech == 0:
        return math.nan
    starts = np.concatenate([[0], np.cumsum(durations.numpy())[:-1]])
    n_units = int(np.count_nonzero(np.add.reduceat(speech.astype(np.int64), starts)))
    return n_units / (n_speech / units.frame_rate)


def rate_ratio(cont: float, prompt: float) -> float:
    """Continuation speaking rate over prompt speaking rate (1 = same tempo).

    Both rates must come from :func:`speaking_rate` measured the same way (same tokenizer,
    both with or both without the silence mask).

    Args:
        cont: units per second of the continuation.
        prompt: units per second of the prompt.

    Returns:
        ``cont / prompt``; NaN when either is NaN or ``prompt`` is not positive.
    """
    if math.isnan(cont) or math.isnan(prompt) or prompt <= 0:
        return math.nan
    return cont / prompt


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, standard deviation, min and max of the non-NaN values, and how many there were.

    Args:
        values: per-sample values; NaN entries (undefined metrics) are left out.

    Returns:
        ``{"mean", "std", "min", "max", "n"}``: ``std`` is the population standard deviation
        (ddof 0); the statistics are NaN and ``n`` is 0 when every value is NaN (or none given).
    """
    arr = np.asarray(list(values), dtype=np.float64).reshape(-1)
    arr = arr[~np.isnan(arr)]
    if len(arr) == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
            "max": float(arr.max()), "n": int(len(arr))}
