#!/usr/bin/env bash
# The probes scored over what the tokenizer heard, not only its best guess (issue 16). The
# bundled LM scores a probe item by the one unit string the bundled tokenizer reads (its CTC
# head's best path); this scores it by the LM's expectation over the head's K most likely unit
# strings, log sum_s P(s | audio) P_LM(s) (speechlm.nbest, `eval lm --probe-beam K`), the
# n-gram baselines alike. make lm-nbest (~40 min; needs the world corpus):
# 1. whether the head's probabilities can be summed as they are: the log probability of the
#    reference phone string at temperatures 0.7-2 on valid (training voices) and on the
#    held-out engines, 100 utterances each -> docs/lm-nbest-calibration;
# 2. the bundled LM on the held-out voices' probes (data/probes-v2, built when absent) with its
#    best-path units -> docs/lm-nbest-k0;
# 3. the same with each beam in BEAMS (default "16 64 256 1024"; 1024 alone ~25 min)
#    -> docs/lm-nbest-kK, paired with step 2 per trial -> docs/lm-nbest-kK-compare;
# 4. the table of all of them -> docs/lm-nbest.md.
# Nothing is trained and nothing shipped changes. A rerun skips the reports that exist.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, compare, heldout_probes
[ -f "$CORPUS/train.tsv" ] || { echo "lm-nbest: $CORPUS/train.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
PROBES=${PROBES:-data/probes-v2}
BEAMS=${BEAMS:-16 64 256 1024}
for k in $BEAMS; do
  [[ "$k" =~ ^[1-9][0-9]*$ ]] || { echo "lm-nbest: BEAMS must list positive integers, got '$k'" >&2; exit 2; }
done
mkdir -p docs
heldout_probes "$PROBES"
report docs/lm-nbest-calibration tokenizer --quiet --corpus "$CORPUS" --tokenizer whisper-phone \
  --manifest valid --manifest heldout --max-utterances 100 --no-ued
report docs/lm-nbest-k0 lm --quiet --model whisper-phone-lm --corpus "$CORPUS" --probes "$PROBES"
for k in $BEAMS; do
  report "docs/lm-nbest-k$k" lm --quiet --model whisper-phone-lm --corpus "$CORPUS" \
    --probes "$PROBES" --probe-beam "$k"
  compare lm docs/lm-nbest-k0 "docs/lm-nbest-k$k" "docs/lm-nbest-k$k-compare"
done
"$PY" - docs/lm-nbest.md docs/lm-nbest-k0 $(for k in $BEAMS; do echo "docs/lm-nbest-k$k"; done) <<'PY'
import json
import sys

out, *stems = sys.argv[1:]
lines = ["# The probes scored over the tokenizer's likely unit strings (scripts/lm_nbest.sh)", "",
         "The bundled whisper-phone-lm on the held-out voices' probes; beam 0 scores each item's "
         "best-path units, beam K the LM's expectation over the K most likely unit strings of "
         "the bundled CTC head (mass: the mean probability those strings cover); the n-gram "
         "baselines scored the same way. Paired: the change against beam 0 over the same "
         "trials, 95 % bootstrap interval (* excludes 0).", "",
         "| beam | probe | mass | LM | 95 % interval | paired vs beam 0 | bigram | unigram |",
         "|---|---|---|---|---|---|---|---|"]
for stem in stems:
    r = json.load(open(f"{stem}.json"))
    k = stem.rsplit("-k", 1)[1]
    cmp = {}
    if k != "0":
        cmp = {row["kind"]: row for row in json.load(open(f"{stem}-compare.json"))["rows"]}
    for kind in ("lexical", "syntactic"):
        if kind not in r:
            continue
        p = r[kind]
        lo, hi = p["ci95"]
        mass = f"{p['beam']['mass']:.3f}" if p.get("beam") else "-"
        d = cmp.get(kind) or {}
        paired = "-"
        if "delta" in d:
            a, b = d["ci95"]
            star = "*" if d["distinct"] else ""
            paired = f"{d['delta']:+.3f}{star} [{a:+.3f}, {b:+.3f}]"
        base = p.get("baselines", {})
        lines.append(f"| {k} | {kind} | {mass} | {p['accuracy']:.3f} | [{lo:.3f}, {hi:.3f}] | "
                     f"{paired} | {base.get('bigram', {}).get('accuracy', float('nan')):.3f} | "
                     f"{base.get('unigram', {}).get('accuracy', float('nan')):.3f} |")
open(out, "w").write("\n".join(lines) + "\n")
print(out)
PY
