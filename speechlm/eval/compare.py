"""``speechlm eval compare-resynth BASE.json OTHER.json``: two resynthesis reports of the same
utterances, paired; ``speechlm eval compare-continue``: two continuation reports of the same
prompts and seeds (:func:`compare_continue`).

Two vocoders judged on the same utterances differ by less than either report's spread across
utterances; pairing removes that spread. For each method both reports ran and each group
(held-out voices, seen voices), the difference OTHER - BASE of:

* WER (the reports' first ASR judge): corpus WER, word errors over reference words; and the
  same by pocketsphinx where both reports also ran it (``--asr whisper,pocketsphinx``): a judge
  that shares nothing with Whisper, for units made by Whisper's own encoder;
* speaker similarity to the original and DNSMOS: means over utterances;
* the similarity's margin over the closest other voice of the set (its calibration): a mean over
  the utterances that have one; a similarity that rises with that margin flat or falling made
  the output closer to voices in general, not to its own;
* the output's F0 against the source's (RMSE in cents over frames voiced in both) and its voicing
  error (share of frames voiced in one and not the other): means over the utterances where both
  reports have a value (a silent or unvoiced output has no F0 RMSE), their number beside them;

each with a 95 % paired bootstrap interval (utterances resampled together in both reports).
An interval that holds 0 says the two cannot be told apart on these utterances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from speechlm.errors import DataError

MEASURES = ("wer", "wer_pocketsphinx", "similarity", "similarity_margin", "dnsmos",
            "f0_rmse_cents", "vuv_error")
WER_KEYS = {"wer": "asr", "wer_pocketsphinx": "asr_pocketsphinx"}  # measure -> transcript key
# paired over the utterances where both have a value
PARTIAL = ("similarity_margin", "f0_rmse_cents", "vuv_error")


def _value(result: dict, measure: str) -> float | None:
    """One method's ``measure`` in a report row (the margin from its calibration)."""
    if measure == "similarity_margin":
        return (result.get("calibration") or {}).get("margin")
    return result.get(measure)
GROUPS = {"held-out voices": True, "seen voices": False}


def _word_errors(rows: list[dict], method: str, key: str = "asr"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance (word errors, reference words) of ``rows[i][method][key]``."""
    from speechlm.eval.judges import normalize_text, utterance_wer

    words = np.array([len(normalize_text(r["text"]).split()) for r in rows], dtype=float)
    errs = np.array([utterance_wer(r["text"], r[method][key]) for r in rows]) * words
    return errs, words


def paired_delta(base_rows: list[dict], other_rows: list[dict], method: str, measure: str,
                 samples: int = 2000, seed: int = 0) -> dict[str, Any] | None:
    """OTHER - BASE of ``measure`` (``wer``, ``wer_pocketsphinx``: corpus WER; else the mean)
    over utterances paired row by row, with a 95 % bootstrap interval; None where a row lacks
    the value (for the measures of :data:`PARTIAL`, the pairs with a value in both rows, counted
    in ``n``; None where there is none)."""
    if measure in WER_KEYS:
        key = WER_KEYS[measure]
        if any(r[method].get(key) is None or not r.get("text") for r in base_rows + other_rows):
            return None
        ea, words = _word_errors(base_rows, method, key)
        eb, _ = _word_errors(other_rows, method, key)
        num, den = eb - ea, words
    else:
        va = [_value(r[method], measure) for r in base_rows]
        vb = [_value(r[method], measure) for r in other_rows]
        if measure in PARTIAL:
            pairs = [(x, y) for x, y in zip(va, vb) if x is not None and y is not None]
            if not pairs:
                return None
            va, vb = [x for x, _ in pairs], [y for _, y in pairs]
        elif any(v is None for v in va + vb):
            return None
        num, den = np.array(vb, float) - np.array(va, float), np.ones(len(va))
    out = ratio_bootstrap(num, den, samples, seed)
    if measure in PARTIAL:
        out["n"] = len(num)
    return out


def ratio_bootstrap(num: np.ndarray, den: np.ndarray, samples: int = 2000, seed: int = 0
                    ) -> dict[str, Any]:
    """``sum(num) / sum(den)`` over paired items (``num``: OTHER - BASE per item), with a 95 %
    bootstrap interval from resampling the items; ``distinct``: the interval excludes 0."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(samples, len(num)))
    boot = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"delta": round(float(num.sum() / max(den.sum(), 1e-12)), 4),
            "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "distinct": bool(lo > 0 or hi < 0)}


def compare_resynth(base: dict, other: dict, samples: int = 2000, seed: int = 0) -> dict:
    """Paired differences OTHER - BASE per method and group (see the module docstring).

    Raises:
        DataError: the reports share no utterance or no method.
    """
    a = {u["name"]: u for u in base.get("utterances", [])}
    b = {u["name"]: u for u in other.get("utterances", [])}
    names = sorted(set(a) & set(b))
    methods = [m for m in base.get("methods", []) if m in other.get("methods", [])]
    if not names or not methods:
        raise DataError("the two resynthesis reports share no utterance and method: judge the "
                        "same --data / --per-voice / --seed with both vocoders")
    rows = []
    for method in methods:
        for group, held in GROUPS.items():
            pick = [n for n in names if a[n]["held_out"] == held and method in a[n]
                    and method in b[n]]
            if not pick:
                continue
            row = {"method": method, "group": group, "utterances": len(pick)}
            for m in MEASURES:
                row[m] = paired_delta([a[n] for n in pick], [b[n] for n in pick], method, m,
                                      samples, seed)
            rows.append(row)
    return {"base": base.get("vocoder"), "other": other.get("vocoder"),
            "utterances": len(names), "samples": samples, "rows": rows}


def compare_markdown(report: dict) -> str:
    def cell(d: dict | None) -> str:
        if d is None:
            return "-"
        lo, hi = d["ci95"]
        n = f" (n = {d['n']})" if "n" in d else ""
        return f"{d['delta']:+.4f} [{lo:+.4f}, {hi:+.4f}]" + (" *" if d["distinct"] else "") + n

    lines = [f"{report['other']} - {report['base']}, paired over the same utterances "
             "(95 % bootstrap intervals; * the interval excludes 0):", "",
             "| method | voices | n | WER | pocketsphinx WER | speaker sim | sim margin over the "
             "closest other | DNSMOS | F0 RMSE (cents) | voicing error |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['method']} | {r['group']} | {r['utterances']} | {cell(r['wer'])} | "
                     f"{cell(r.get('wer_pocketsphinx'))} | "
                     f"{cell(r['similarity'])} | {cell(r.get('similarity_margin'))} | "
                     f"{cell(r['dnsmos'])} | "
                     f"{cell(r.get('f0_rmse_cents'))} | {cell(r.get('vuv_error'))} |")
    return "\n".join(lines) + "\n"


# continuation measures compared: name -> (label, value of one sample of an 'eval continue'
# report, or None where it has none)
def _word_rate(s: dict) -> float | None:
    c = s.get("content") or {}
    return c["n_confident_in_dictionary"] / c["seconds"] if c.get("seconds") else None


def _word_share(key: str) -> Any:
    """A sample's ``content[key]`` per word heard (None where Whisper heard none)."""
    def value(s: dict) -> float | None:
        c = s.get("content") or {}
        return c[key] / c["n_words"] if c.get("n_words") else None
    return value


def pitch_error(shift: float | None, rest: float | None) -> float | None:
    """|``shift`` - ``rest``| (cents): how far a continuation's move of the mean log F0 from its
    prompt departs from the move of the utterance's original rest (None where either is)."""
    return None if shift is None or rest is None else abs(shift - rest)


CONTINUE_MEASURES: dict[str, tuple[str, Any]] = {
    "similarity": ("speaker sim to prompt", lambda s: s.get("similarity")),
    "margin": ("margin over the closest other voice",
               lambda s: (s.get("calibration") or {}).get("margin")),
    "voice_kept": ("voice kept (share)",
                   lambda s: None if not s.get("calibration")
                   else float(s["calibration"]["verdict"] == "voice kept")),
    "dnsmos": ("DNSMOS", lambda s: s.get("dnsmos")),
    "dict_words_per_s": ("dictionary words/s", _word_rate),
    "word_prob": ("mean word prob", _word_share("prob_sum")),
    "confident_share": ("confident share", _word_share("n_confident")),
    "auto_bleu2": ("auto-BLEU-2 (repetition)", lambda s: s.get("auto_bleu2")),
    "pitch_shift": ("pitch move from the prompt (cents)", lambda s: s.get("pitch_shift_cents")),
    "pitch_error": ("pitch move off the original's (cents)",
                    lambda s: pitch_error(s.get("pitch_shift_cents"),
                                          s.get("_rest_pitch_shift_cents"))),
}


def compare_continue(base: dict, other: dict, samples: int = 2000, seed: int = 0) -> dict:
    """Paired differences OTHER - BASE of two ``eval continue`` reports (two vocoders, LMs or
    settings) over the samples both drew (same prompt, same seed): per measure of
    :data:`CONTINUE_MEASURES` the mean difference, with a 95 % bootstrap interval that resamples
    whole prompts (a prompt's samples share its voice and words), per voice group.

    Raises:
        DataError: the reports share no sample.
    """
    def samples_of(rep: dict) -> dict[tuple[str, int], tuple[dict, bool]]:
        return {(p["name"], s["seed"]): (
                    {**s, "_rest_pitch_shift_cents": p.get("rest_pitch_shift_cents")},
                    bool(p.get("held_out")))
                for p in rep.get("prompts", []) for s in p.get("samples", [])}

    a, b = samples_of(base), samples_of(other)
    keys = sorted(set(a) & set(b))
    if not keys:
        raise DataError("the two continuation reports share no sample: run 'eval continue' with "
                        "the same --data / --per-voice / --seed for both")
    rng = np.random.default_rng(seed)
    rows = []
    for group, held in GROUPS.items():
        pick = [k for k in keys if a[k][1] == held]
        if not pick:
            continue
        prompts = sorted({k[0] for k in pick})
        row = {"group": group, "prompts": len(prompts), "samples": len(pick)}
        for name, (_, value) in CONTINUE_MEASURES.items():
            per_prompt, base_vals, other_vals = [], [], []
            for p in prompts:
                d = [(value(a[k][0]), value(b[k][0])) for k in pick if k[0] == p]
                d = [(x, y) for x, y in d if x is not None and y is not None]
                if d:
                    per_prompt.append(np.mean([y - x for x, y in d]))
                    base_vals += [x for x, _ in d]
                    other_vals += [y for _, y in d]
            if not per_prompt:
                row[name] = None
                continue
            v = np.array(per_prompt)
            boot = v[rng.integers(0, len(v), size=(samples, len(v)))].mean(1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
            row[name] = {"base": round(float(np.mean(base_vals)), 4),
                         "other": round(float(np.mean(other_vals)), 4),
                         "delta": round(float(v.mean()), 4),
                         "ci95": [round(float(lo), 4), round(float(hi), 4)],
                         "distinct": bool(lo > 0 or hi < 0)}
        rows.append(row)
    return {"base": _continue_label(base), "other": _continue_label(other),
            "samples_paired": len(keys), "bootstrap_samples": samples, "rows": rows}


def _continue_label(rep: dict) -> str | None:
    """What a continuation report judged: its vocoder, or its model where the model spoke
    through its own vocoder (``eval continue --model DIR``)."""
    vocoder = rep.get("vocoder")
    if vocoder == "model's" and rep.get("model"):
        return f"{rep['model']} (its vocoder)"
    return vocoder


def compare_continue_markdown(report: dict) -> str:
    lines = [f"{report['other']} - {report['base']}, paired over the samples both drew (same "
             "prompt and seed; 95 % bootstrap intervals over prompts; * the interval excludes "
             "0):", "", "| voices | prompts x samples | measure | base | other | difference |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        for name, (label, _) in CONTINUE_MEASURES.items():
            d = r.get(name)
            if d is None:
                continue
            lo, hi = d["ci95"]
            lines.append(f"| {r['group']} | {r['prompts']} x {r['samples'] // r['prompts']} | "
                         f"{label} | {d['base']:.3f} | {d['other']:.3f} | {d['delta']:+.4f} "
                         f"[{lo:+.4f}, {hi:+.4f}]{' *' if d['distinct'] else ''} |")
    return "\n".join(lines) + "\n"


__all__ = ["CONTINUE_MEASURES", "pitch_error", "compare_continue", "compare_continue_markdown",
           "compare_markdown", "compare_resynth", "paired_delta"]


PROBE_KINDS = {"lexical": "spot-the-word", "syntactic": "acceptability"}


def compare_lm(base: dict, other: dict, samples: int = 2000, seed: int = 0) -> dict:
    """Paired differences OTHER - BASE of two ``eval lm`` reports' probe accuracies over the
    trials both scored (same pair, same voice): per probe kind the mean difference of credit,
    with a 95 % bootstrap interval that resamples whole pairs (a pair's trials in several voices
    share its words), and per voice; the test perplexity of each beside.

    Raises:
        DataError: the reports share no probe trial (or predate per-trial credits).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for kind, label in PROBE_KINDS.items():
        def trials(rep: dict) -> dict[tuple[str, str], float]:
            return {(t["pair_id"], t["voice"]): float(t["credit"])
                    for t in (rep.get(kind) or {}).get("trials", [])}

        a, b = trials(base), trials(other)
        keys = sorted(set(a) & set(b))
        if not keys:
            continue
        pairs = sorted({k[0] for k in keys})
        per_pair = np.array([np.mean([b[k] - a[k] for k in keys if k[0] == p]) for p in pairs])
        boot = per_pair[rng.integers(0, len(pairs), size=(samples, len(pairs)))].mean(1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        voices = sorted({k[1] for k in keys})
        rows.append({
            "kind": kind, "label": label, "pairs": len(pairs), "trials": len(keys),
            "base": round(float(np.mean([a[k] for k in keys])), 4),
            "other": round(float(np.mean([b[k] for k in keys])), 4),
            "delta": round(float(np.mean([b[k] - a[k] for k in keys])), 4),
            "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "distinct": bool(lo > 0 or hi < 0),
            "per_voice": {v: {"base": round(float(np.mean([a[k] for k in keys if k[1] == v])), 4),
                              "other": round(float(np.mean([b[k] for k in keys if k[1] == v])), 4),
                              "trials": sum(k[1] == v for k in keys)} for v in voices}})
    if not rows:
        raise DataError("the two LM reports share no probe trial: run 'eval lm --probes' with "
                        "the same probe sets for both (reports older than per-trial credits "
                        "cannot be paired)")
    ppl = {name: (rep.get("perplexity") or {}).get("perplexity_per_unit")
           for name, rep in (("base", base), ("other", other))}
    return {"base": base.get("model"), "other": other.get("model"), "perplexity": ppl,
            "bootstrap_samples": samples, "rows": rows}


def compare_lm_markdown(report: dict) -> str:
    ppl = report["perplexity"]
    lines = [f"{report['other']} - {report['base']}, paired over the probe trials both scored "
             "(same pair, same voice; 95 % bootstrap intervals over pairs; * the interval "
             f"excludes 0); test perplexity per unit {ppl['base']} / {ppl['other']}:", "",
             "| probe | voices | pairs | trials | base | other | difference |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lo, hi = r["ci95"]
        lines.append(f"| {r['label']} | all | {r['pairs']} | {r['trials']} | {r['base']:.3f} | "
                     f"{r['other']:.3f} | {r['delta']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
                     f"{' *' if r['distinct'] else ''} |")
        for v, d in r["per_voice"].items():
            lines.append(f"| {r['label']} | {v} | | {d['trials']} | {d['base']:.3f} | "
                         f"{d['other']:.3f} | {d['other'] - d['base']:+.4f} |")
    return "\n".join(lines) + "\n"
