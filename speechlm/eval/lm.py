"""Held-out perplexity of the unit LM, per unit and per second of speech.

Each test utterance is scored on its own, as ``<bos> u1 ... un <eos>``: the loss covers the units
and the closing ``<eos>`` (``n + 1`` predictions). Utterances longer than the context are scored in
windows that each keep half a context of history.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from speechlm.errors import DataError, ModelError
from speechlm.lm import UnitLM

if TYPE_CHECKING:
    from speechlm.decode import PackedLM
from speechlm.units import special_id


@torch.inference_mode()
def utterance_nll(model: UnitLM | PackedLM, units: np.ndarray) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of one utterance and the number of predictions."""
    cfg = model.cfg
    seq = torch.tensor([special_id("<bos>", cfg.n_units), *units.tolist(),
                        special_id("<eos>", cfg.n_units)])
    device = next(model.parameters()).device
    total, count = 0.0, 0
    T = cfg.block_size
    start = 0  # first target position scored in this window
    while start < len(seq) - 1:
        ctx0 = max(0, start - T // 2) if start else 0
        end = min(len(seq) - 1, ctx0 + T)
        x = seq[ctx0:end][None].to(device)
        y = seq[ctx0 + 1 : end + 1][None].to(device)
        logits, _ = model(x)
        nll = F.cross_entropy(logits[0].float(), y[0], reduction="none")
        keep = nll[start - ctx0 :]
        total += float(keep.sum())
        count += keep.numel()
        start = end
    return total, count


def perplexity(model: UnitLM | PackedLM, data_dir: str | os.PathLike, split: str = "test",
               progress: bool = True) -> dict:
    """Perplexity of ``model`` on the unit shard ``data_dir/<split>``."""
    from speechlm.data.shards import open_shard, utterances

    tokens, meta = open_shard(data_dir, split)
    if meta["unit_space"] != model.cfg.unit_space:
        raise ModelError(f"the {split} shard is in unit space {meta['unit_space']} but the LM "
                         f"was trained on {model.cfg.unit_space}")
    if bool(meta["dedup"]) != bool(model.cfg.dedup):
        raise ModelError(f"the shard has dedup={meta['dedup']} but the LM dedup={model.cfg.dedup}")
    t0 = time.perf_counter()
    utts = utterances(np.asarray(tokens), meta["n_units"])
    total, count = 0.0, 0
    for u in tqdm(utts, desc=f"ppl {split}", unit="utt", disable=not progress):
        nll, n = utterance_nll(model, u)
        total += nll
        count += n
    return {
        "split": split, "utterances": len(utts), "predictions": count,
        "seconds_of_speech": meta["seconds"],
        "nll_per_unit": round(total / count, 4),
        "perplexity_per_unit": round(math.exp(total / count), 3),
        "bits_per_second": round(total / math.log(2) / meta["seconds"], 1),
        "eval_seconds": round(time.perf_counter() - t0, 1),
    }


def _fit_ngrams(data_dir: str | os.PathLike, add_k: float):
    """Add-k unigram and bigram log-probabilities ``([V], [V, V])`` fitted on the ``train``
    shard, with the ``<bos>`` / ``<eos>`` ids and the shard's reader."""
    from speechlm.data.shards import open_shard, utterances

    train, meta = open_shard(data_dir, "train")
    n = meta["n_units"]
    bos, eos, vocab = special_id("<bos>", n), special_id("<eos>", n), n + 3
    uni = np.full(vocab, add_k)
    big = np.full((vocab, vocab), add_k)
    for u in utterances(np.asarray(train), n):
        seq = np.concatenate([[bos], u, [eos]])
        np.add.at(uni, seq[1:], 1)
        np.add.at(big, (seq[:-1], seq[1:]), 1)
    uni /= uni.sum()
    big /= big.sum(1, keepdims=True)
    return np.log(uni), np.log(big), bos, eos, n


def ngram_baselines(data_dir: str | os.PathLike, split: str = "test",
                    add_k: float = 0.01) -> dict:
    """Perplexity per unit of add-k smoothed unigram and bigram models fitted on ``train``.

    Scored on the same predictions as :func:`perplexity` (units and the closing ``<eos>``), so
    the numbers sit side by side with the LM's.
    """
    from speechlm.data.shards import open_shard, utterances

    log_uni, log_big, bos, eos, n = _fit_ngrams(data_dir, add_k)
    test, _ = open_shard(data_dir, split)
    test_seqs = [np.concatenate([[bos], u, [eos]]) for u in utterances(np.asarray(test), n)]
    nll_u = -np.concatenate([log_uni[q[1:]] for q in test_seqs]).mean()
    nll_b = -np.concatenate([log_big[q[:-1], q[1:]] for q in test_seqs]).mean()
    return {"unigram_perplexity": round(float(np.exp(nll_u)), 3),
            "bigram_perplexity": round(float(np.exp(nll_b)), 3), "add_k": add_k}


def ngram_scorers(data_dir: str | os.PathLike, add_k: float = 0.01) -> dict[str, Any]:
    """``{"bigram": fn, "unigram": fn}``: the log-probability of a unit sequence (each unit
    given ``<bos>`` and the units before it, no ``<eos>``, as :func:`sequence_logprob` scores
    probe items) under the n-gram models of :func:`ngram_baselines`."""
    log_uni, log_big, bos, _, _ = _fit_ngrams(data_dir, add_k)

    def bigram(ids) -> float:
        q = np.concatenate([[bos], np.asarray(ids, dtype=np.int64)])
        return float(log_big[q[:-1], q[1:]].sum())

    def unigram(ids) -> float:
        return float(log_uni[np.asarray(ids, dtype=np.int64)].sum())

    return {"bigram": bigram, "unigram": unigram}


@torch.inference_mode()
def text_context(model: UnitLM, frames_dir: str | os.PathLike, corpus: str | os.PathLike,
                 split: str = "test", min_words: int = 4) -> dict:
    """Does an LM trained with text read text as it reads speech?

    For each ``split`` utterance with word times (``.wbd``) and at least ``min_words`` words,
    the deduplicated units of its second half (from the middle word's start) are scored after
    four contexts: the first half as units (``speech``), the first half's words as
    ``<text> words <speech>`` (``text``), the first-half words of *another* utterance
    (``other_text``: the calibration, as much text but not these words), and nothing but
    ``<bos>`` (``none``). If the LM links text to speech, ``text`` comes between ``speech`` and
    the other two; if it learned only the format, ``text`` equals ``other_text``.

    Args:
        frames_dir: frame-rate unit shards holding ``split`` (for the word times).

    Returns:
        ``{"utterances", "target_units", "nll_per_unit": {context: nats}}``.
    """
    from speechlm.audio import SAMPLE_RATE
    from speechlm.data.interleave import collapse_runs
    from speechlm.data.manifest import read_manifest, read_phn, resolve_manifest
    from speechlm.data.shards import open_shard, utterances
    from speechlm.units import encode_words, marker_id, normalize_text

    cfg = model.cfg
    if not cfg.text_vocab:
        raise ValueError("this LM was trained on units only: it reads no text")
    tokens, meta = open_shard(frames_dir, split)
    if meta["unit_space"] != cfg.unit_space or meta["dedup"]:
        raise ModelError(f"{frames_dir} must hold frame-rate units of {cfg.unit_space}")
    K = cfg.n_units
    items = read_manifest(resolve_manifest(split, corpus))
    cases = []  # (speech context, first-half words, target units)
    for item, frames in zip(items, utterances(np.asarray(tokens), K)):
        wbd = item.path.with_suffix(".wbd")
        if not wbd.exists():
            continue
        rows = [(s, normalize_text(w, cfg.text_vocab)) for s, _, w in read_phn(wbd)]
        rows = [(s, w) for s, w in rows if w]  # (start in samples, its words)
        if len(rows) < min_words:
            continue
        k = len(rows) // 2
        b = min(len(frames), round(rows[k][0] * meta["frame_rate"] / SAMPLE_RATE))
        first = [x for _, w in rows[:k] for x in w]
        cases.append((collapse_runs(frames[:b]).tolist(), first,
                      collapse_runs(frames[b:]).tolist()))
    if not cases:
        raise DataError(f"no {split} utterance of {corpus} has word times and {min_words}+ "
                        "words")
    bos, t_mark, s_mark = (special_id("<bos>", K), marker_id("<text>", K),
                           marker_id("<speech>", K))
    device = next(model.parameters()).device
    totals = {"speech": 0.0, "text": 0.0, "other_text": 0.0, "none": 0.0}
    n_units, used = 0, 0
    for i, (speech, first, target) in enumerate(cases):
        other = cases[(i + 1) % len(cases)][1]

        def text_of(ws):
            return [t_mark] + encode_words(ws, K, cfg.text_vocab) + [s_mark]

        contexts = {"speech": speech, "text": text_of(first), "other_text": text_of(other),
                    "none": []}
        if max(1 + len(c) + len(target) for c in contexts.values()) > cfg.block_size:
            continue
        for name, ctx in contexts.items():
            seq = torch.tensor([bos, *ctx, *target], device=device)
            logits, _ = model(seq[None, :-1])
            nll = F.cross_entropy(logits[0].float(), seq[1:], reduction="none")
            totals[name] += float(nll[len(ctx):].sum())
        n_units += len(target)
        used += 1
    if not used:
        raise DataError("every case is longer than the LM's context")
    return {"split": split, "utterances": used, "target_units": n_units,
            "nll_per_unit": {k: round(v / n_units, 4) for k, v in totals.items()}}


def evaluate_lm(model_name: str | os.PathLike, units_dir: str | os.PathLike | None = None,
                corpus: str | os.PathLike = "data/corpus", split: str = "test",
                probes: str | os.PathLike | None = "data/probes",
                progress: bool = True, decode_weights: str | None = None,
                frames_dir: str | os.PathLike | None = None,
                phone_noise: tuple[float, ...] = (),
                tokenizer: str | os.PathLike | None = None, probe_beam: int = 0) -> dict:
    """``speechlm eval lm``: perplexity on ``split`` and the probe accuracies when available;
    for an LM trained with text, :func:`text_context` on the frame-rate units in
    ``frames_dir`` (default: the training's ``frames_dir``).

    The unit shards of ``split`` are made from ``corpus`` with the LM's tokenizer if missing.
    ``phone_noise``: for an LM trained on the phone oracle's units, also score the probes with
    random phone errors at these rates (:func:`speechlm.eval.probes.phone_noise_curve`).
    ``tokenizer`` makes the missing shards and the probes' units (default: the one the LM was
    trained with, or, where that name now loads other units, e.g. after a switch of the bundled
    ``phone-k100``, the ``tokenizer/`` beside the LM's directory in a stage bundle such as
    ``outputs/baselines/phone-v1``); it must have the LM's unit space. ``probe_beam``: score
    each probe item by the LM's expectation over the tokenizer's ``probe_beam`` most likely unit
    strings instead of its best path's (CTC tokenizers; :func:`speechlm.eval.probes.score_pairs`).
    """
    from pathlib import Path

    from speechlm.data.oracle import ORACLE_SPACE, PhoneLabels, dump_phone_shards
    from speechlm.data.shards import dump_units
    from speechlm.lm import LanguageModel
    from speechlm.tokenizer import Tokenizer

    lm = LanguageModel.load(model_name)
    model, training = lm.model, lm.training
    tok_name = training.get("tokenizer", "mfcc-k100")
    default_dir = f"data/units/{Path(tok_name).name}-{'dedup' if model.cfg.dedup else 'frames'}"
    units_dir = Path(units_dir or training.get("units_dir") or default_dir)
    oracle = model.cfg.unit_space == ORACLE_SPACE  # reference phones (speechlm.data.oracle)
    if oracle:
        tok = PhoneLabels()
    else:
        beside = Path(model_name).parent / "tokenizer"
        fallback = tokenizer is None and (beside / "config.json").exists()
        try:
            tok = Tokenizer.load(tokenizer or tok_name)
        except ModelError:
            if not fallback:
                raise
            tok = None
        if fallback and (tok is None or tok.unit_space != model.cfg.unit_space):
            tok_name = str(beside)
            tok = Tokenizer.load(beside)
    if phone_noise and not oracle:
        raise ModelError("phone noise needs an LM trained on the phone oracle's units "
                         f"({ORACLE_SPACE}); {model_name} is trained on {model.cfg.unit_space}")
    if tok.unit_space != model.cfg.unit_space:
        raise ModelError(f"tokenizer {tokenizer or tok_name} has unit space {tok.unit_space} "
                         f"but the LM was trained on {model.cfg.unit_space} (give --tokenizer)")
    frames_dir = frames_dir or training.get("frames_dir")
    missing = tuple(x for x in dict.fromkeys(("train", split))
                    if not (units_dir / f"{x}.json").exists())
    if missing and oracle:
        dump_phone_shards(corpus, units_dir, splits=missing, progress=progress)
    elif missing:  # the test split, and train for the n-gram baselines
        dump_units(tok, corpus, units_dir, splits=missing, dedup=model.cfg.dedup,
                   progress=progress)
    report: dict = {"model": str(model_name), "unit_space": model.cfg.unit_space,
                    "params": model.num_params(), "dedup": model.cfg.dedup,
                    "training": training,
                    "perplexity": perplexity(model, units_dir, split, progress),
                    "baselines": ngram_baselines(units_dir, split)}
    # what sampling runs on (speechlm.decode): its perplexity next to the network's
    from speechlm.decode import decoder_for

    packed = decoder_for(lm, decode_weights)
    if packed.weights != "fp32" or decode_weights:
        report["perplexity_decoder"] = {"weights": packed.weights,
                                        **perplexity(packed, units_dir, split, progress)}
    if model.cfg.text_vocab and frames_dir:
        frames_dir = Path(frames_dir)
        if not (frames_dir / f"{split}.json").exists():
            dump_units(tok, corpus, frames_dir, splits=(split,), dedup=False, progress=progress)
        report["text_context"] = text_context(model, frames_dir, corpus, split)
    if probes is not None:
        from speechlm.eval.probes import pair_credit, score_pairs, score_reference_phones

        for kind in ("lexical", "syntactic"):
            tsv = Path(probes) / kind / "pairs.tsv"
            if tsv.exists():
                r = score_pairs(model, tok, tsv, normalize="sum", progress=progress,
                                baselines=ngram_scorers(units_dir), beam=probe_beam)
                report[kind] = {k: r[k] for k in ("accuracy", "ci95", "n", "per_voice",
                                                  "baselines", "beam") if k in r}
                report[kind]["mean_per_unit"] = {k: r["mean"][k] for k in ("accuracy", "ci95")}
                # each trial's credit (sum scores), for paired comparisons (eval compare-lm)
                report[kind]["trials"] = [
                    {"pair_id": t["pair_id"], "voice": t["voice"],
                     "credit": pair_credit(t["good_sum"], t["bad_sum"])} for t in r["pairs"]]
                if phone_noise:
                    from speechlm.eval.probes import phone_noise_curve

                    report[kind]["phone_noise"] = phone_noise_curve(model, tsv, phone_noise)
                ref = score_reference_phones(model, tsv)  # phone-class LMs, aligned voices
                if ref is not None:
                    report[kind]["reference_phones"] = ref
                if model.cfg.dedup:  # can the units tell the two items apart?
                    from speechlm.eval.probes import spelling

                    report[kind]["spelling"] = spelling(
                        tok, tsv, progress=progress,
                        units=[(p["good_ids"], p["bad_ids"]) for p in r["pairs"]])
                if model.cfg.text_vocab:  # the same pairs as text: does it know the words?
                    from speechlm.eval.probes import score_text_pairs

                    report[kind]["as_text"] = score_text_pairs(model, tsv)
    return report


def lm_markdown(report: dict) -> str:
    """A short markdown table of an :func:`evaluate_lm` report."""
    p = report["perplexity"]
    rows = [("model", report["model"]), ("parameters", f"{report['params'] / 1e6:.2f}M"),
            (f"{p['split']} perplexity per unit", p["perplexity_per_unit"]),
            (f"{p['split']} bits per second", p["bits_per_second"])]
    if "perplexity_decoder" in report:
        d = report["perplexity_decoder"]
        rows.append((f"{p['split']} perplexity per unit, decoding in {d['weights']} "
                     "(what sampling runs on)", d["perplexity_per_unit"]))
    if "baselines" in report:
        b = report["baselines"]
        rows.append((f"{p['split']} perplexity of a bigram / unigram model (train counts)",
                     f"{b['bigram_perplexity']} / {b['unigram_perplexity']}"))
    if "text_context" in report:
        t = report["text_context"]
        nll = t["nll_per_unit"]
        rows.append((f"second-half units after the first half as units / as text / another "
                     f"utterance's text / nothing, nats per unit ({t['utterances']} "
                     f"{t['split']} utterances with word times, {t['target_units']} units)",
                     " / ".join(f"{nll[k]:.3f}" for k in ("speech", "text", "other_text",
                                                          "none"))))
    for kind, label in (("lexical", "spot-the-word (word vs non-word)"),
                        ("syntactic", "acceptability (sentence vs broken)")):
        if kind in report:
            r = report[kind]
            lo, hi = r["ci95"]
            rows.append((f"{label}, {r['n']} pairs", f"{r['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"))
            if r.get("beam"):
                rows.append((f"{label}: items scored over the {r['beam']['k']} most likely "
                             "unit strings; their mean probability mass",
                             f"{r['beam']['mass']:.3f}"))
            for name, b in r.get("baselines", {}).items():
                lo, hi = b["ci95"]
                rows.append((f"{label}: {name} baseline (train counts)",
                             f"{b['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"))
            for voice, v in r["per_voice"].items():
                lo, hi = v["ci95"]
                rows.append((f"{label}: voice {voice}, {v['n']} pairs",
                             f"{v['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"))
            for rate, v in r.get("phone_noise", {}).items():
                lo, hi = v["ci95"]
                rows.append((f"{label}: the reference phones with {rate} random phone errors "
                             f"per phone, {v['n']} trials",
                             f"{v['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"))
            for voice, v in r.get("spelling", {}).items():
                what = f"{v['same_units']:.3f} of pairs as the same units"
                if v["phone_error_rate"] is not None:
                    what += (f"; phone error rate {v['phone_error_rate']:.3f}, "
                             f"{v['exact']:.3f} of items spelled exactly")
                rows.append((f"{label}: how voice {voice}'s items are tokenized", what))
            if "reference_phones" in r:
                t = r["reference_phones"]
                lo, hi = t["ci95"]
                rows.append((f"{label}: the same pairs of {', '.join(t['per_voice'])} from their "
                             f"reference phones as units (the tokenizer's spelling errors taken "
                             f"away), {t['n']} pairs", f"{t['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"))
            if "as_text" in r:
                t = r["as_text"]
                lo, hi = t["ci95"]
                rows.append((f"{label}: the same pairs read as text, {t['n']} pairs",
                             f"{t['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"))
    return "\n".join(["| metric | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
