"""Pair the methods of one ``speechlm eval resynth`` report utterance by utterance: each of the
drawn-F0 split's methods (``hn-drawn-f0``, ``hn-src-voicing``, ``hn-src-pitch``) and ``hn``
against ``hn-f0`` (the source's contour) and against ``hn`` (the drawn one), on Whisper WER,
DNSMOS and speaker similarity, with 95 % bootstrap intervals (``speechlm.eval.compare``).

    .venv/bin/python scripts/drawn_f0_parts.py REPORT.json --json OUT.json --markdown OUT.md

Exit 2 with one line: a missing or unreadable report, or one without hn-f0 and hn.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MEASURES = ("wer", "dnsmos", "similarity")
SIDES = ("hn-f0", "hn")


def pair_methods(report: dict, samples: int = 2000, seed: int = 0) -> dict:
    """``{"rows": [{"base", "other", "utterances", "mean", MEASURE: paired delta}]}``: ``hn``
    and each drawn-F0 split method of ``report`` against each of :data:`SIDES`, over the
    utterances judged by both.

    Raises:
        ValueError: the report lacks hn-f0 or hn.
    """
    from speechlm.eval.compare import paired_delta
    from speechlm.eval.resynth import F0_PARTS

    methods = report.get("methods", [])
    missing = [m for m in SIDES if m not in methods]
    if missing:
        raise ValueError(f"the report has no {', '.join(missing)} (judge with --methods "
                         f"hn-f0,hn,{','.join(F0_PARTS)})")
    rows = []
    for base in SIDES:
        for other in [m for m in ("hn",) + F0_PARTS if m in methods and m != base]:
            utts = [u for u in report.get("utterances", []) if base in u and other in u]
            a = [{**u, "x": u[base]} for u in utts]
            b = [{**u, "x": u[other]} for u in utts]
            row = {"base": base, "other": other, "utterances": len(utts),
                   "mean": {m: _mean(b, m) for m in MEASURES},
                   "base_mean": {m: _mean(a, m) for m in MEASURES}}
            for m in MEASURES:
                row[m] = paired_delta(a, b, "x", m, samples, seed) if utts else None
            rows.append(row)
    return {"report": report.get("vocoder"), "rows": rows, "original_wer": _orig_wer(report)}


def _mean(rows: list[dict], measure: str) -> float | None:
    if measure == "wer":
        from speechlm.eval.compare import _word_errors

        rows = [r for r in rows if r.get("text") and r["x"].get("asr") is not None]
        if not rows:
            return None
        errs, words = _word_errors(rows, "x")
        return round(float(errs.sum() / max(words.sum(), 1)), 4)
    vals = [r["x"].get(measure) for r in rows if r["x"].get(measure) is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def _orig_wer(report: dict) -> float | None:
    rows = [{**u, "x": u["orig"]} for u in report.get("utterances", []) if u.get("orig")]
    return _mean(rows, "wer") if rows else None


def markdown(result: dict) -> str:
    def cell(d):
        if not d:
            return "-"
        lo, hi = d["ci95"]
        return f"{d['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]{' *' if d['distinct'] else ''}"

    out = [f"Drawn-F0 split of `{result['report']}` (paired over the same utterances; * = the "
           f"95 % interval excludes 0). Calibration: Whisper WER of the originals "
           f"{result['original_wer']}; hn-f0 (source contour) and hn (drawn contour) are the two "
           "ends.", "",
           "| other | base | n | WER base / other | WER change | DNSMOS change "
           "| similarity change |",
           "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        out.append(f"| {r['other']} | {r['base']} | {r['utterances']} | "
                   f"{r['base_mean']['wer']} / {r['mean']['wer']} | "
                   f"{cell(r['wer'])} | {cell(r['dnsmos'])} | {cell(r['similarity'])} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", help="an eval resynth --json report")
    ap.add_argument("--json", help="write the pairs here")
    ap.add_argument("--markdown", help="write the table here")
    ap.add_argument("--format", choices=("markdown", "json"), default="markdown",
                    help="what to print")
    args = ap.parse_args()
    try:
        report = json.loads(Path(args.report).read_text())
        result = pair_methods(report)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"drawn_f0_parts: {args.report}: {e}", file=sys.stderr)
        return 2
    from speechlm.cli.common import emit_report

    return emit_report(args, result, markdown(result).rstrip("\n"))


if __name__ == "__main__":
    sys.exit(main())
