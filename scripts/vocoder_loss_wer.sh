#!/usr/bin/env bash
# Does the decoder's log-mel loss say how many words it loses on voices it never heard? (make
# vocoder-loss-wer, ~5 min). The GPU scale test (scripts/gpu_vocoder_scale.sh) logs only losses;
# WER costs ~8 min per decoder to judge. So before reading its loss, this measures how far such a
# loss tracks held-out WER across the decoders on the bundled units that were judged already:
# the bundle, make vocoder-overfit's two, make vocoder-adversarial's two, make vocoder-grow's
# two (grow and its control) and make vocoder-warp's. For each: the loss terms on the same batches of the bundled
# vocoder's valid cache and of the held-out engines' (vocoder_losses), beside its committed
# held-out WER with the source F0 (hn-f0, the same 61 utterances for all) ->
# docs/vocoder-loss-wer.{json,md}, with Pearson and Spearman correlations over the decoders
# (few: read them as a direction, not a law). A decoder whose export is missing is left out and
# named (its make target rebuilds it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # PY, CORPUS, vocoder_losses
DECODERS=(
  "bundle=phone-vocoder=docs/vocoder-source-f0-1-heldout"
  "overfit=outputs/vocoder-overfit-eval/overfit=docs/vocoder-overfit-heldout"
  "overfit620=outputs/vocoder-overfit-eval/overfit620=docs/vocoder-overfit620-heldout"
  "adv=outputs/vocoder-adversarial-eval/adv=docs/vocoder-adv-heldout"
  "adv-strong=outputs/vocoder-adversarial-eval/adv-strong=docs/vocoder-adv-strong-heldout"
  "grow-control=outputs/vocoder-grow-eval/grow-control=docs/vocoder-grow-control-heldout"
  "grow=outputs/vocoder-grow-eval/grow=docs/vocoder-grow-heldout"
  "warp=outputs/vocoder-warp-eval/warp=docs/vocoder-warp-heldout"
)
have=() rows=() missing=()
for d in "${DECODERS[@]}"; do
  IFS== read -r name path report <<< "$d"
  if [ "$path" = phone-vocoder ] || [ -f "$path/config.json" ]; then
    [ -f "$report.json" ] || { echo "vocoder-loss-wer: $report.json is missing" >&2; exit 2; }
    have+=("$path") rows+=("$name=$path=$report.json")
  else
    missing+=("$name")
  fi
done
[ "${#missing[@]}" = 0 ] || echo "vocoder-loss-wer: not here, left out: ${missing[*]}" >&2
vocoder_losses outputs/vocoder-loss-wer/losses.json "${have[@]}"
"$PY" - outputs/vocoder-loss-wer/losses.json docs/vocoder-loss-wer "${rows[@]}" <<'PY'
import json
import sys

import numpy as np

from speechlm.io import write_json_atomic, write_text_atomic
from speechlm.vocoder import Vocoder

losses, stem, *rows = sys.argv[1:]
loss = json.load(open(losses))["loss"]
table = []
for row in rows:
    name, path, report = row.split("=")
    g = json.load(open(report))["groups"]
    held = g["held-out voices"]
    table.append({"decoder": name, "path": path, "report": report, "n": held["n"],
                  "wer_heldout": held["hn-f0"]["wer"], "wer_orig": held["orig"]["wer"],
                  "mel_valid": loss[path]["valid"]["mel"],
                  "mel_heldout": loss[path]["heldout"]["mel"],
                  "adversarial": float(Vocoder.load(path).training.get("adversarial", 0))})


def rank(x):
    return np.argsort(np.argsort(x)).astype(float)


def correlations(rows):  # None where it is undefined (under 3 decoders, or a constant side)
    wer = np.array([r["wer_heldout"] for r in rows])
    out = {}
    for key in ("mel_valid", "mel_heldout"):
        x = np.array([r[key] for r in rows])
        ok = len(rows) >= 3 and x.std() > 0 and wer.std() > 0
        out[key] = {"pearson": round(float(np.corrcoef(x, wer)[0, 1]), 3) if ok else None,
                    "spearman": (round(float(np.corrcoef(rank(x), rank(wer))[0, 1]), 3)
                                 if ok else None)}
    return out


def fmt(v):
    return "undefined" if v is None else f"{v:+.2f}"


# all decoders, and those trained on the L1 alone (a critic's loss trades L1 for sharpness)
l1_only = [r for r in table if not r["adversarial"]]
corr = {"all": {"n": len(table), **correlations(table)},
        "l1_only": {"n": len(l1_only), **correlations(l1_only)}}
write_json_atomic(f"{stem}.json", {"decoders": table, "correlation_with_wer_heldout": corr,
                                   "losses": json.load(open(losses))})
lines = ["Log-mel L1 (normalized as the decoder is trained; 32 batches of 16 two-second crops, "
         "seed 1) of each decoder on the bundled units, on the bundled vocoder's valid cache "
         "(known identities, held-out sentences) and on the held-out engines (voices no model "
         "here heard), beside its held-out WER with the source F0 (Whisper tiny.en, the same "
         f"{table[0]['n']} utterances; originals {table[0]['wer_orig']:.3f}). "
         "Rebuilt by scripts/vocoder_loss_wer.sh.", "",
         "| decoder | adversarial weight | L1 valid | L1 held out | WER held out |",
         "|---|---|---|---|---|"]
for r in sorted(table, key=lambda r: r["mel_heldout"]):
    lines.append(f"| {r['decoder']} | {r['adversarial']:g} | {r['mel_valid']:.4f} | "
                 f"{r['mel_heldout']:.4f} | {r['wer_heldout']:.3f} |")
floor = loss["phone-vocoder (units shuffled)"]
lines += ["", f"Trivial baseline, the bundle with each crop's units shuffled: L1 valid "
          f"{floor['valid']['mel']:.4f}, held out {floor['heldout']['mel']:.4f} (its WER with "
          "the units shuffled, in docs/vocoder-floor-b6400r-heldout.md: 1.325).", ""]
for who, c in (("all", "all decoders"), ("l1_only", "the decoders trained on the L1 alone")):
    lines.append(f"Correlation with held-out WER over {c} ({corr[who]['n']}): " + "; ".join(
        f"{k.replace('mel_', 'L1 ').replace('heldout', 'held out')}: Pearson "
        f"{fmt(v['pearson'])}, Spearman {fmt(v['spearman'])}"
        for k, v in corr[who].items() if k != "n") + ".")
write_text_atomic(f"{stem}.md", "\n".join(lines) + "\n")
print("\n".join(lines))
PY
