"""The most likely unit strings of a CTC phone head's posteriors, and how likely each is.

A CTC tokenizer (:class:`speechlm.tokenizer.Tokenizer` over a Whisper phone head read with
output ``"ctc"``) gives one unit string: each frame takes its most likely class, a blank frame the
unit before it (:func:`speechlm.quantizer.fill_blanks`), and the deduplicated ids are the units.
That string is the head's best *path*; many paths give each string. This module sums them: the
probability of a deduplicated unit string ``u_1 .. u_n`` under the frame posteriors is the sum,
over every frame path that :func:`~speechlm.quantizer.fill_blanks` and deduplication map to it,
of the product of the frames' probabilities, where

* the frames before ``u_1`` are blanks (the leading blanks take the first unit),
* ``u_k`` is emitted at one frame and holds, as itself or as blanks, until ``u_{k+1}``.

:func:`unit_nbest` keeps the ``beam`` most likely prefixes frame by frame (a prefix beam search
on that topology, which unlike CTC's needs no blank state: a repeated unit cannot be told from a
held one, and deduplication merges them anyway) and returns the best strings with their log
probabilities; with a beam wide enough to hold every prefix the figures are exact
(:func:`string_logprob` scores one given string exactly).

Used to score audio by the whole of what the tokenizer heard rather than its best guess:
``log sum_s P(s | audio) P_LM(s)`` over the n best strings ``s``
(:func:`speechlm.eval.probes.score_pairs` with ``beam``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["logsumexp", "string_logprob", "strings_logprob", "unit_nbest"]

_FLOOR = 1e-30


def logsumexp(values: Sequence[float]) -> float:
    """``log(sum(exp(v)))`` of a non-empty sequence, stable for large negative values."""
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def _log_posteriors(post: np.ndarray | object, blank: int) -> np.ndarray:
    p = np.asarray(post, dtype=np.float64)
    if p.ndim != 2 or not 0 <= blank < p.shape[1]:
        raise ValueError(f"expected [F, V] posteriors with the blank inside V, got shape "
                         f"{p.shape} and blank {blank}")
    return np.log(np.maximum(p, _FLOOR))


def unit_nbest(post: np.ndarray | object, blank: int, beam: int = 16,
               candidates: int = 8, exact: bool = True) -> list[tuple[tuple[int, ...], float]]:
    """The ``beam`` most likely deduplicated unit strings of ``post`` (``[F, V]`` frame
    posteriors of a CTC head, ``blank`` its blank's index) and their log probabilities, best
    first.

    Args:
        post: frame posteriors (rows sum to 1; a numpy array or a CPU tensor).
        blank: the blank's column.
        beam: prefixes kept after each frame (>= 1).
        candidates: per frame, only the ``candidates`` most likely non-blank classes may start
            a new unit (the others add at most their small mass; ``V - 1`` makes the search
            exact up to the beam).
        exact: score each string found by :func:`string_logprob` (every path that reads as
            it); otherwise its score is what the search kept, a lower bound (a prefix pruned
            on the way may have joined it later).

    Returns:
        ``[(ids, logprob), ...]``, at most ``beam`` strings, sorted by ``logprob`` descending;
        ``ids`` are the string's unit ids. An input of all blanks is the one-unit string
        ``(blank,)``, as the tokenizer reads it; no frames give ``[((), 0.0)]``.

    Raises:
        ValueError: ``post`` is not ``[F, V]``, ``blank`` is outside it, or ``beam`` /
            ``candidates`` is below 1.
    """
    if beam < 1 or candidates < 1:
        raise ValueError(f"beam and candidates must be >= 1, got {beam} and {candidates}")
    lp = _log_posteriors(post, blank)
    n_frames, n_classes = lp.shape
    if n_frames == 0:
        return [((), 0.0)]
    labels = np.array([c for c in range(n_classes) if c != blank])
    k = min(candidates, len(labels))
    beams: dict[tuple[int, ...], float] = {(): 0.0}
    for t in range(n_frames):
        row = lp[t]
        lab = labels[np.argpartition(-row[labels], k - 1)[:k]] if k < len(labels) else labels
        starts = [(int(c), float(row[c])) for c in lab]
        nxt: dict[tuple[int, ...], float] = {}

        def add(key: tuple[int, ...], value: float) -> None:
            old = nxt.get(key)
            nxt[key] = value if old is None else float(np.logaddexp(old, value))

        for prefix, score in beams.items():
            if prefix:
                last = prefix[-1]
                add(prefix, score + float(np.logaddexp(row[blank], row[last])))
            else:
                add(prefix, score + float(row[blank]))
                last = -1
            for c, v in starts:
                if c != last:
                    add(prefix + (c,), score + v)
        if len(nxt) > beam:
            beams = dict(sorted(nxt.items(), key=lambda kv: -kv[1])[:beam])
        else:
            beams = nxt
    out = [((blank,) if not ids else ids, score) for ids, score in beams.items()]
    if exact:
        out = list(zip([ids for ids, _ in out], strings_logprob(lp, blank, [i for i, _ in out])))
    return sorted(out, key=lambda kv: -kv[1])


def string_logprob(post: np.ndarray | object, blank: int, ids: Sequence[int],
                   log: bool = False) -> float:
    """The exact log probability of the deduplicated unit string ``ids`` under ``post``
    (``[F, V]``, ``blank`` the blank's column): the sum over every frame path that reads as
    ``ids`` (see the module's notes). ``-inf`` when no path does (e.g. ``ids`` repeats a unit
    back to back, or is longer than the frames). ``log``: ``post`` is already the log
    posteriors."""
    lp = np.asarray(post, dtype=np.float64) if log else _log_posteriors(post, blank)
    n_frames = lp.shape[0]
    ids = [int(i) for i in ids]
    if ids == [blank]:
        return float(lp[:, blank].sum())
    if not ids:
        return 0.0 if n_frames == 0 else -math.inf
    if any(i == blank for i in ids) or any(a == b for a, b in zip(ids, ids[1:])):
        return -math.inf
    idx = np.array(ids)
    # alpha[j]: log probability of the frames so far reading as ids[:j + 1], the last one held
    alpha = np.full(len(ids), -np.inf)
    lead = 0.0  # all blanks so far
    for t in range(n_frames):
        row = lp[t]
        emit = row[idx]
        new = alpha + np.logaddexp(row[blank], emit)
        new[0] = np.logaddexp(new[0], lead + emit[0])
        new[1:] = np.logaddexp(new[1:], alpha[:-1] + emit[1:])
        lead += row[blank]
        alpha = new
    return float(alpha[-1])


def strings_logprob(lp: np.ndarray, blank: int, strings: Sequence[Sequence[int]]) -> list[float]:
    """:func:`string_logprob` of several strings at once, over the same log posteriors ``lp``
    (``[F, V]``, already logged): one pass over the frames for all of them."""
    strings = [[int(i) for i in ids] for ids in strings]
    out = [0.0] * len(strings)
    plain = [k for k, ids in enumerate(strings)
             if ids and ids != [blank] and blank not in ids
             and all(a != b for a, b in zip(ids, ids[1:]))]
    fast = set(plain)
    for k, ids in enumerate(strings):
        if k not in fast:
            out[k] = string_logprob(lp, blank, ids, log=True)
    if not plain:
        return out
    lp = np.asarray(lp, dtype=np.float64)
    n_frames = lp.shape[0]
    width = max(len(strings[k]) for k in plain)
    idx = np.zeros((len(plain), width), dtype=np.int64)
    for r, k in enumerate(plain):
        idx[r, :len(strings[k])] = strings[k]
    alpha = np.full(idx.shape, -np.inf)
    lead = 0.0
    for t in range(n_frames):
        row = lp[t]
        emit = row[idx]
        new = alpha + np.logaddexp(row[blank], emit)
        new[:, 0] = np.logaddexp(new[:, 0], lead + emit[:, 0])
        new[:, 1:] = np.logaddexp(new[:, 1:], alpha[:, :-1] + emit[:, 1:])
        lead += row[blank]
        alpha = new
    for r, k in enumerate(plain):
        out[k] = float(alpha[r, len(strings[k]) - 1])
    return out
