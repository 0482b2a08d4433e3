"""Zero-shot lexical and syntactic probes of the unit LM (ZeroSpeech 2021 sWUGGY / sBLIMP style):
scoring a probe set made by :mod:`speechlm.data.probes`.

The LM "passes" a pair when it gives the good item the higher log-probability; the score is the
share of pairs it passes (chance is 0.5), with a Wilson 95% interval. Nguyen et al. (2020),
"The Zero Resource Speech Benchmark 2021: Metrics and baselines for unsupervised spoken language
modeling", define the original tasks.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from speechlm.data.probes import PROBE_KINDS, read_pairs
from speechlm.errors import DataError, ModelError
from speechlm.generate import sequence_logprob
from speechlm.lm import UnitLM
from speechlm.tokenizer import Tokenizer

__all__ = ["NORMALIZATIONS", "pair_credit", "score_pairs", "wilson_interval"]

log = logging.getLogger(__name__)

NORMALIZATIONS = ("sum", "mean")
Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Args:
        successes: number of successes (may be fractional, e.g. ties counted as 0.5).
        n: number of trials.
        z: normal quantile; the default gives a two-sided 95% interval.

    Returns:
        ``(low, high)``, within [0, 1]; ``(0.0, 1.0)`` when ``n`` is 0.

    Raises:
        ValueError: ``n < 0`` or ``successes`` outside ``[0, n]``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    return max(0.0, center - half), min(1.0, center + half)


def _summary(correct: Sequence[float]) -> dict[str, Any]:
    n = len(correct)
    k = float(sum(correct))
    lo, hi = wilson_interval(k, n)
    return {"accuracy": k / n if n else float("nan"), "n": n, "ci95": [lo, hi]}


def score_pairs(model: UnitLM, tokenizer: Tokenizer, pairs_tsv: str | os.PathLike,
                normalize: str = "sum", *, add_eos: bool = False,
                progress: bool = True,
                baselines: dict[str, Any] | None = None, beam: int = 0) -> dict[str, Any]:
    """Zero-shot accuracy of ``model`` on a probe set.

    Both items of a pair are tokenized (deduplicated when the LM was trained on deduplicated
    units, ``model.cfg.dedup``) and scored with :func:`speechlm.generate.sequence_logprob`. A
    pair counts 1 when the good item scores higher, 0.5 on a tie and 0 otherwise. Two scores
    are computed: ``"sum"``, the total log-probability (ZeroSpeech's choice for both sWUGGY
    and sBLIMP), and ``"mean"``, the log-probability per predicted unit, which does not favour
    the shorter item.

    Args:
        model: the unit LM.
        tokenizer: the tokenizer the LM was trained on.
        pairs_tsv: a ``pairs.tsv`` written by :func:`build_probe_set`.
        normalize: which score the top-level ``accuracy`` / ``ci95`` / ``per_voice`` report,
            ``"sum"`` or ``"mean"``; both are always in ``result["sum"]`` and
            ``result["mean"]``.
        add_eos: also score the closing ``<eos>`` (the LM sees each item as a whole utterance).
        progress: show a progress bar on stderr.
        baselines: other scorers of the same units, ``{name: fn(ids) -> log-probability}``
            (e.g. the n-gram models of :func:`speechlm.eval.lm.ngram_scorers`); each gets its
            own ``accuracy`` / ``n`` / ``ci95`` / ``per_voice`` (sum scores) in
            ``result["baselines"][name]``.
        beam: 0 scores each item's unit string (the tokenizer's best path). A beam ``K >= 1``
            (CTC tokenizers only) scores what the tokenizer heard as a whole: the item's score
            is ``log sum_s P(s | audio) P_LM(s)`` over the ``K`` most likely unit strings ``s``
            of its posteriors (:func:`speechlm.nbest.unit_nbest`, each string's probability
            summed over its frame paths), the LM's expectation over the tokenizer's reading
            rather than its value at one reading; the baselines are scored the same way. The
            ``mean`` score divides by the best path's length. ``result["beam"]`` then holds
            ``K`` and the mean probability mass the strings covered.

    Returns:
        ``{"kind", "pairs_tsv", "unit_space", "dedup", "add_eos", "normalize", "accuracy",
        "n", "ci95", "per_voice", "sum", "mean", "pairs", "seconds"}``. ``accuracy`` is in
        [0, 1], ``n`` counts pairs (pair x voice), ``ci95`` is the 95% Wilson score interval
        ``[low, high]``; ``per_voice`` maps each voice to its own ``accuracy`` / ``n`` /
        ``ci95``; ``sum`` and ``mean`` each hold those four keys for that score; ``pairs`` lists
        per pair the log-probabilities (``good_sum``, ``bad_sum``), unit counts
        (``good_units``, ``bad_units``) and the units themselves (``good_ids``, ``bad_ids``).

    Raises:
        ValueError: ``normalize`` is not ``"sum"`` or ``"mean"``.
        ModelError: the tokenizer's unit space differs from the LM's, or ``beam`` is asked
            of a tokenizer that is not a CTC head's or an LM trained on units not deduplicated.
        DataError: the pair list is missing, malformed or empty, or an item is longer than the
            LM's context.
        AudioError: an item's audio is missing or unreadable.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, "
                         f"got {normalize!r}")
    lm_space = model.cfg.unit_space
    if tokenizer.unit_space != lm_space:
        raise ModelError(f"the tokenizer's unit space {tokenizer.unit_space!r} differs from the "
                         f"LM's unit space {lm_space!r}; score with the tokenizer the LM was "
                         "trained on")
    pairs_tsv = Path(pairs_tsv)
    rows = read_pairs(pairs_tsv)
    if not rows:
        raise DataError(f"{pairs_tsv} lists no pairs")
    dedup = bool(model.cfg.dedup)
    max_units = model.cfg.block_size - int(add_eos)
    if beam < 0:
        raise ValueError(f"beam must be >= 0, got {beam}")
    if beam and (tokenizer.blank is None or not dedup):
        raise ModelError("a probe beam needs a CTC tokenizer (a phone head read with output "
                         "'ctc') and an LM trained on its deduplicated units")
    t0 = time.perf_counter()

    baselines = dict(baselines or {})
    other: dict[str, list[float]] = {name: [] for name in baselines}
    paths = [p for row in rows for p in (row["good_path"], row["bad_path"])]
    masses: list[float] = []

    def scores(ids: torch.Tensor) -> tuple[float, dict[str, float]]:
        return (sequence_logprob(model, ids, add_eos=add_eos),
                {name: float(fn(ids)) for name, fn in baselines.items()})

    if not beam:
        # tokenized ahead on worker threads (in order), scored here as each pair arrives
        units = tokenizer.tokenize_files(paths, dedup=dedup)

    def item_score(path: Path) -> tuple[float, list[int], dict[str, float]]:
        if beam:
            return beam_score(path)
        ids = next(units).ids
        if ids.numel() > max_units:
            raise DataError(f"{path}: {ids.numel()} units exceed the LM's context of "
                            f"{max_units}")
        lm, others = scores(ids)
        return lm, ids.tolist(), others

    def beam_score(path: Path) -> tuple[float, list[int], dict[str, float]]:
        from speechlm.audio import FRAME_SIZE, load_audio
        from speechlm.nbest import logsumexp, unit_nbest

        wav = load_audio(path, tokenizer.sample_rate, min_samples=FRAME_SIZE)
        post = tokenizer.features(wav[None])[0]
        best = [int(v) for v in tokenizer.quantize(post).tolist()]
        best = [v for i, v in enumerate(best) if i == 0 or v != best[i - 1]]
        if len(best) > max_units:
            raise DataError(f"{path}: {len(best)} units exceed the LM's context of "
                            f"{max_units}")
        found = [(ids, lp) for ids, lp in unit_nbest(post.numpy(), tokenizer.blank, beam)
                 if len(ids) <= max_units]
        lms = batch_logprob(model, [ids for ids, _ in found], add_eos=add_eos)
        scored = [(lp, lm, {name: float(fn(torch.tensor(ids))) for name, fn in baselines.items()})
                  for (ids, lp), lm in zip(found, lms)]
        masses.append(math.exp(logsumexp([lp for lp, _, _ in scored])))
        return (logsumexp([lp + lm for lp, lm, _ in scored]), best,
                {name: logsumexp([lp + o[name] for lp, _, o in scored]) for name in baselines})

    details = []
    correct: dict[str, list[float]] = {"sum": [], "mean": []}
    voice_of: list[str] = []
    for row in tqdm(rows, desc="probe score", unit="pair", disable=not progress):
        good_lp, good_ids, good_other = item_score(row["good_path"])
        bad_lp, bad_ids, bad_other = item_score(row["bad_path"])
        good_n, bad_n = len(good_ids), len(bad_ids)
        for name in baselines:
            other[name].append(pair_credit(good_other[name], bad_other[name]))
        good_mean = good_lp / max(1, good_n + int(add_eos))
        bad_mean = bad_lp / max(1, bad_n + int(add_eos))
        correct["sum"].append(pair_credit(good_lp, bad_lp))
        correct["mean"].append(pair_credit(good_mean, bad_mean))
        voice_of.append(row["voice"])
        details.append({"pair_id": row["pair_id"], "voice": row["voice"],
                        "good_sum": good_lp, "bad_sum": bad_lp,
                        "good_units": good_n, "bad_units": bad_n,
                        "good_ids": good_ids, "bad_ids": bad_ids})

    voices = sorted(set(voice_of))
    by_norm: dict[str, dict[str, Any]] = {}
    for norm, credits in correct.items():
        block = _summary(credits)
        block["per_voice"] = {v: _summary([c for c, w in zip(credits, voice_of) if w == v])
                              for v in voices}
        by_norm[norm] = block
    kind = pairs_tsv.parent.name if pairs_tsv.parent.name in PROBE_KINDS else None
    main = by_norm[normalize]
    result = {
        "kind": kind, "pairs_tsv": str(pairs_tsv), "unit_space": lm_space, "dedup": dedup,
        "add_eos": add_eos, "normalize": normalize,
        "accuracy": main["accuracy"], "n": main["n"], "ci95": main["ci95"],
        "per_voice": main["per_voice"], "sum": by_norm["sum"], "mean": by_norm["mean"],
        "pairs": details, "seconds": round(time.perf_counter() - t0, 2),
    }
    if beam:
        result["beam"] = {"k": beam, "mass": sum(masses) / len(masses)}
    if baselines:
        result["baselines"] = {}
        for name, credits in other.items():
            block = _summary(credits)
            block["per_voice"] = {v: _summary([c for c, w in zip(credits, voice_of) if w == v])
                                  for v in voices}
            result["baselines"][name] = block
    lo, hi = main["ci95"]
    log.info("%s probe (%s): accuracy %.3f [%.3f, %.3f] on %d pairs; per-unit mean %.3f",
             kind or pairs_tsv, normalize, main["accuracy"], lo, hi, main["n"],
             by_norm["mean"]["accuracy"])
    return result


def batch_logprob(model: UnitLM, strings: Sequence[Sequence[int]], add_eos: bool = False,
                  batch: int = 64) -> list[float]:
    """:func:`speechlm.generate.sequence_logprob` of several unit strings, ``batch`` at a time
    (padded on the right: the LM is causal, so the padding changes nothing before it)."""
    from speechlm.units import special_id

    cfg = model.cfg
    model.eval()
    bos, eos = special_id("<bos>", cfg.n_units), special_id("<eos>", cfg.n_units)
    device = next(model.parameters()).device
    out: list[float] = []
    for i in range(0, len(strings), batch):
        seqs = [[bos, *map(int, s), *([eos] if add_eos else [])] for s in strings[i:i + batch]]
        width = max(len(q) for q in seqs)
        if width > cfg.block_size + 1:
            raise ValueError(f"{width} tokens exceed the context of {cfg.block_size}")
        x = torch.zeros(len(seqs), width, dtype=torch.long)
        for r, q in enumerate(seqs):
            x[r, :len(q)] = torch.tensor(q)
        with torch.inference_mode():
            logits, _ = model(x[:, :-1].to(device))
            lp = torch.log_softmax(logits.float(), -1).gather(2, x[:, 1:, None].to(device))
        lp = lp.squeeze(-1).cpu()
        for r, q in enumerate(seqs):
            out.append(float(lp[r, :len(q) - 1].sum()))
    return out


def pair_credit(good: float, bad: float) -> float:
    """A trial's credit: 1 when the good item scores higher, 0.5 on a tie, 0 otherwise."""
    if good > bad:
        return 1.0
    if good == bad:
        return 0.5
    return 0.0


def score_text_pairs(model: UnitLM, pairs_tsv: str | os.PathLike) -> dict[str, Any]:
    """The same pairs read as text by an LM trained with text (``model.cfg.text_vocab``): each
    distinct (good, bad) text pair once, scored by the total log-probability of
    ``<text> characters`` after ``<bos>``. Says whether the LM knows the words as text, which
    the speech probes then ask it to know from sound.

    Returns:
        ``{"accuracy", "n", "ci95"}`` over distinct pairs.

    Raises:
        ValueError: the LM has no text vocabulary.
        DataError: as :func:`speechlm.data.probes.read_pairs`, or no pairs.
    """
    import torch

    from speechlm.units import encode_words, marker_id, normalize_text

    cfg = model.cfg
    if not cfg.text_vocab:
        raise ValueError("this LM was trained on units only: it has no text to score")
    pairs = {(r["good_text"], r["bad_text"]) for r in read_pairs(pairs_tsv)}
    if not pairs:
        raise DataError(f"{pairs_tsv} lists no pairs")

    def score(text: str) -> float:
        ids = [marker_id("<text>", cfg.n_units)] + encode_words(
            normalize_text(text, cfg.text_vocab), cfg.n_units, cfg.text_vocab)
        return sequence_logprob(model, torch.tensor(ids))

    return _summary([pair_credit(score(g), score(b)) for g, b in sorted(pairs)])


def unit_phones(tokenizer: Any) -> list[str] | None:
    """The phone each unit id stands for, when a tokenizer's units are phones (CTC units,
    :mod:`speechlm.tokenizer`; the phone oracle's reference phones); None for k-means units."""
    from speechlm.data.oracle import PhoneLabels
    from speechlm.data.phones import CLASSES

    if isinstance(tokenizer, PhoneLabels):
        return list(CLASSES)
    if getattr(tokenizer, "blank", None) is not None:
        return list(tokenizer.encoder.phones)
    return None


def spelling(tokenizer: Any, pairs_tsv: str | os.PathLike, progress: bool = True,
             units: Sequence[tuple[list[int], list[int]]] | None = None) -> dict[str, Any]:
    """How the tokenizer spells the probe items, per voice: the share of pairs whose two items
    come out as the same deduplicated units (an LM can only tie on those), and, when the units
    are phones (:func:`unit_phones`) and an item has a reference alignment (``.phn``), the
    phone error rate of its units (silence dropped, repeats merged) and the share of items
    spelled exactly as the reference. ``units``: each pair's deduplicated (good, bad) unit
    ids when already tokenized (:func:`score_pairs`' ``pairs``), in the order of
    ``pairs_tsv``; else the items are tokenized here.

    Returns:
        ``{voice: {"pairs", "same_units", "items_aligned", "phone_error_rate",
        "exact"}}`` (the last two None without phones or alignments).
    """
    from speechlm.data.oracle import phone_ids
    from speechlm.data.phones import CLASSES
    from speechlm.eval.robustness import levenshtein

    rows = read_pairs(pairs_tsv)
    phones = unit_phones(tokenizer)
    if units is None:
        it = tokenizer.tokenize_files([p for row in rows for p in (row["good_path"],
                                                                   row["bad_path"])], dedup=True)
        units = [(next(it).ids.tolist(), next(it).ids.tolist()) for _ in rows]
    if len(units) != len(rows):
        raise ValueError(f"{len(units)} unit pairs for the {len(rows)} pairs of {pairs_tsv}")

    def spelled(ids: list[int], names: Sequence[str]) -> list[str]:
        out: list[str] = []
        for i in ids:
            p = names[i] if 0 <= i < len(names) else None
            if p is not None and p != "SIL" and (not out or out[-1] != p):
                out.append(p)
        return out

    acc: dict[str, list[float]] = {}  # voice -> pairs, same, aligned items, edits, ref, exact
    for row, (good, bad) in zip(tqdm(rows, desc="spelling", unit="pair", disable=not progress),
                                units):
        a = acc.setdefault(row["voice"], [0, 0, 0, 0, 0, 0])
        a[0] += 1
        a[1] += good == bad
        if phones is None:
            continue
        for path, ids in ((row["good_path"], good), (row["bad_path"], bad)):
            phn = Path(path).with_suffix(".phn")
            if not phn.exists():
                continue
            ref = spelled(phone_ids(phn)[0].tolist(), CLASSES)
            hyp = spelled(ids, phones)
            a[2] += 1
            a[3] += levenshtein(hyp, ref)
            a[4] += len(ref)
            a[5] += hyp == ref
    return {v: {"pairs": int(a[0]), "same_units": round(a[1] / a[0], 4),
                "items_aligned": int(a[2]),
                "phone_error_rate": round(a[3] / a[4], 4) if a[4] else None,
                "exact": round(a[5] / a[2], 4) if a[2] else None}
            for v, a in sorted(acc.items())}


def corrupt_phones(ids: Sequence[int], rate: float, n_phones: int, keep: int,
                   rng: Any) -> list[int]:
    """``ids`` with each phone other than ``keep`` (silence) deleted, replaced by a random
    phone or followed by a random phone inserted, each with probability ``rate / 3``; repeats
    merged again after (what a deduplicating tokenizer would give)."""
    out: list[int] = []
    for i in ids:
        u = rng.random() if i != keep else 1.0
        if u < rate / 3:
            continue
        if u < 2 * rate / 3:
            out.append(int(rng.integers(n_phones)))
        elif u < rate:
            out += [int(i), int(rng.integers(n_phones))]
        else:
            out.append(int(i))
    return [v for k, v in enumerate(out) if k == 0 or v != out[k - 1]]


def phone_noise_curve(model: UnitLM, pairs_tsv: str | os.PathLike, rates: Sequence[float],
                      seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """How a phone-oracle LM (:mod:`speechlm.data.oracle`) scores a probe set when the items'
    reference phones carry random errors at each phone error rate of ``rates``
    (:func:`corrupt_phones`, both items of a pair, ``repeats`` seeded draws per pair): the
    phone error rate a tokenizer would have to stay under for its LM to pass the probe, if its
    errors were random and its LM had learned from clean phones (a lower bound on the harm:
    a tokenizer's errors repeat, and its LM learns them).

    Returns:
        ``{rate: {"accuracy", "n", "ci95"}}`` (rates as strings, pairs x draws).

    Raises:
        ModelError: ``model`` is not trained on the oracle's phones.
        DataError: an item has no ``.phn``.
    """
    from speechlm.data.oracle import ORACLE_SPACE, phone_ids
    from speechlm.data.phones import CLASSES

    if model.cfg.unit_space != ORACLE_SPACE:
        raise ModelError("phone noise applies to LMs trained on the phone oracle's units "
                         f"({ORACLE_SPACE}), not {model.cfg.unit_space}")
    import numpy as np

    rows = read_pairs(pairs_tsv)
    items = [(phone_ids(Path(r["good_path"]).with_suffix(".phn"))[0].tolist(),
              phone_ids(Path(r["bad_path"]).with_suffix(".phn"))[0].tolist()) for r in rows]
    sil, n_phones = CLASSES.index("SIL"), len(CLASSES) - 1  # silence is the last class
    out = {}
    for rate in rates:
        if not 0 <= rate <= 1:
            raise ValueError(f"phone error rates must lie in [0, 1], got {rate}")
        rng = np.random.default_rng(seed)
        correct = []
        for _ in range(1 if rate == 0 else repeats):
            for good, bad in items:
                g = sequence_logprob(model, torch.tensor(corrupt_phones(good, rate, n_phones,
                                                                        sil, rng)))
                b = sequence_logprob(model, torch.tensor(corrupt_phones(bad, rate, n_phones,
                                                                        sil, rng)))
                correct.append(1.0 if g > b else 0.5 if g == b else 0.0)
        out[f"{rate:g}"] = _summary(correct)
    return out


def score_reference_phones(model: UnitLM, pairs_tsv: str | os.PathLike,
                           progress: bool = False) -> dict[str, Any] | None:
    """The probe pairs of the voices with alignments scored from their reference phones
    (the ``.phn`` beside each item) read as units, for an LM whose units are phone classes (a
    CTC phone tokenizer's: unit ``i`` is :data:`speechlm.data.phones.CLASSES` ``[i]``): what
    the LM knows of the words and sentences once the tokenizer's spelling errors are taken away.

    Returns:
        ``{"accuracy", "n", "ci95", "per_voice"}`` (sum scores) over the pairs whose two items
        both have a ``.phn``, or None when none has (or the LM's units are not phone classes).
    """
    import tempfile

    from speechlm.data.oracle import PhoneLabels
    from speechlm.data.phone_text import is_phone_space
    from speechlm.data.probes import PAIRS_COLUMNS

    if not is_phone_space(model.cfg.n_units, model.cfg.unit_space):
        return None
    rows = [r for r in read_pairs(pairs_tsv)
            if all(Path(r[k]).with_suffix(".phn").exists() for k in ("good_path", "bad_path"))]
    if not rows:
        return None
    labels = PhoneLabels()
    labels.unit_space, labels.n_units = model.cfg.unit_space, model.cfg.n_units  # the same ids
    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp) / Path(pairs_tsv).parent.name / "pairs.tsv"
        sub.parent.mkdir()
        sub.write_text("\n".join(["\t".join(PAIRS_COLUMNS)] + [
            "\t".join(str(Path(r[c]).resolve() if c.endswith("_path") else r[c])
                      for c in PAIRS_COLUMNS) for r in rows]) + "\n")
        r = score_pairs(model, labels, sub, progress=progress)
    return {k: r[k] for k in ("accuracy", "n", "ci95", "per_voice")}
