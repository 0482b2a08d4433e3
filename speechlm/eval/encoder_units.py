"""Side-by-side table of unit sets: the tokenizer metrics on held-out data (``speechlm eval
tokenizer --manifest test``) and the resynthesis WER through a vocoder trained on each unit set
with the same recipe (``speechlm eval resynth --methods world-f0``), judged against the first
(baseline) unit set with issue 6's targets: PNMI at least 0.15 higher and a lower WER.

    python -m speechlm.eval.encoder_units mfcc-k100 encmel1-k100 [--docs docs] [--steps 4000]
        [--json docs/encoder-units.json] [--markdown docs/encoder-units.md]

Reads ``DOCS/tokenizer-NAME.json`` and ``DOCS/resynth-NAME-sSTEPS.json`` (the report of a vocoder
trained ``STEPS`` steps of ``configs/vocoder/cpu.toml`` on NAME's units). For ``mfcc-k100`` at
4000 steps that vocoder is the bundled one, so its report ``DOCS/vocoder-unit-vocoder.json`` is
used when there is no other. A unit set without a resynthesis report gets empty WER cells.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from speechlm.errors import DataError
from speechlm.io import write_json_atomic, write_text_atomic

PNMI_GAIN = 0.15  # issue 6: PNMI at least this much above the baseline units
METHOD = "world-f0"  # resynthesis proper: the source F0 contour is given
# voices pocketsphinx reads well (espeak: WER ~0.86 even on the originals)
CLEAR_VOICES = ("flite_", "fest_")
BUNDLED_REPORT = {("mfcc-k100", 4000): "vocoder-unit-vocoder.json"}


def _wer(rows: list[dict], key: str) -> float | None:
    from speechlm.eval.judges import word_error_rate

    rows = [r for r in rows if key in r and "asr" in r[key]]
    if not rows:
        return None
    return round(word_error_rate([r["text"] for r in rows], [r[key]["asr"] for r in rows]), 4)


def paired_wer_delta(base: dict, other: dict, samples: int = 2000,
                     seed: int = 0) -> dict[str, Any] | None:
    """WER(other) - WER(base) over the training-voice utterances both reports judged, with a
    95 % paired bootstrap interval (utterances resampled together); None without overlap."""
    from speechlm.eval.compare import paired_delta

    a = {u["name"]: u for u in base["utterances"] if not u["held_out"] and METHOD in u}
    b = {u["name"]: u for u in other["utterances"] if not u["held_out"] and METHOD in u}
    names = sorted(set(a) & set(b))
    if not names:
        return None
    d = paired_delta([a[n] for n in names], [b[n] for n in names], METHOD, "wer", samples, seed)
    return None if d is None else {"utterances": len(names), "delta": d["delta"],
                                   "ci95": d["ci95"]}


def resynth_row(report: dict) -> dict[str, Any]:
    """WER columns of an ``eval resynth`` report: training voices, and their flite + festival
    subset (where the ASR reads the originals well), resynthesized and original."""
    train = [u for u in report["utterances"] if not u["held_out"]]
    clear = [u for u in train if u["voice"].startswith(CLEAR_VOICES)]
    return {"resynth_utterances": len(train), "wer": _wer(train, METHOD),
            "wer_orig": _wer(train, "orig"), "wer_clear": _wer(clear, METHOD),
            "wer_clear_orig": _wer(clear, "orig"),
            "similarity": round(sum(u[METHOD]["similarity"] for u in train) / len(train), 4),
            "vocoder": report["vocoder"]}


def _read(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run {what} first (scripts/build_encoder_units.sh)")


def compare(names: list[str], docs: Path, steps: int = 4000) -> dict[str, Any]:
    rows = []
    for name in names:
        tok = _read(docs / f"tokenizer-{name}.json", f"speechlm eval tokenizer for {name}")
        row = {"name": name, **{k: tok[k] for k in (
            "unit_space", "utterances", "pnmi", "phone_purity", "abx_within_units",
            "abx_across_units", "units_per_second", "bitrate")}}
        path = docs / f"resynth-{name}-s{steps}.json"
        if not path.is_file() and (name, steps) in BUNDLED_REPORT:
            path = docs / BUNDLED_REPORT[name, steps]
        if path.is_file():
            row["_report"] = json.loads(path.read_text())
            row.update(resynth_row(row["_report"]))
        rows.append(row)
    base = rows[0]
    for row in rows[1:]:
        row["pnmi_gain"] = round(row["pnmi"] - base["pnmi"], 4)
        row["meets_pnmi_target"] = row["pnmi_gain"] >= PNMI_GAIN
        if row.get("wer") is not None and base.get("wer") is not None:
            row["meets_wer_target"] = row["wer"] < base["wer"]
            row["wer_delta"] = paired_wer_delta(base["_report"], row["_report"])
    for row in rows:
        row.pop("_report", None)
    return {"format": "speechlm.encoder-units", "version": 1, "baseline": base["name"],
            "targets": {"pnmi_gain_min": PNMI_GAIN, "wer": "lower than the baseline's"},
            "resynth_method": METHOD, "vocoder_steps": steps, "rows": rows}


def markdown(report: dict) -> str:
    def f(v: Any) -> str:
        return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = ["| units | PNMI | Δ PNMI | phone purity | ABX within % | ABX across % | units/s "
             "| resynth WER (orig) | Δ WER [95% CI] | flite+festival WER (orig) | similarity |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        wer = f"{f(r.get('wer'))} ({f(r.get('wer_orig'))})" if r.get("wer") is not None else ""
        clear = (f"{f(r.get('wer_clear'))} ({f(r.get('wer_clear_orig'))})"
                 if r.get("wer_clear") is not None else "")
        d = r.get("wer_delta")
        delta = f"{d['delta']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else ""
        lines.append(f"| {r['name']} | {f(r['pnmi'])} | {f(r.get('pnmi_gain'))} | "
                     f"{f(r['phone_purity'])} | {f(r['abx_within_units'])} | "
                     f"{f(r['abx_across_units'])} | {f(r['units_per_second'])} | {wer} | "
                     f"{delta} | {clear} | {f(r.get('similarity'))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m speechlm.eval.encoder_units",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("names", nargs="+", help="unit sets; the first is the baseline")
    p.add_argument("--docs", default="docs", help="folder with the reports")
    p.add_argument("--steps", type=int, default=4000,
                   help="training steps of the vocoders whose reports to read")
    p.add_argument("--json", help="also write the comparison as JSON here")
    p.add_argument("--markdown", help="also write the markdown table here")
    args = p.parse_args(argv)
    try:
        report = compare(args.names, Path(args.docs), args.steps)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = markdown(report)
    if args.json:
        write_json_atomic(args.json, report)
    if args.markdown:
        write_text_atomic(args.markdown, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
