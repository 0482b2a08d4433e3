#!/usr/bin/env bash
# The bundled LM's unit rate, measured on the units it reads now. An LM's units_per_second is
# the rate `speechlm continue --seconds N` sizes a continuation by; the bundled whisper-phone-lm
# measured it on its training units, read without the CTC blank penalty, and kept it when it
# adopted the penalised units (make wphone-blank SHIP=1), which come faster. make
# wphone-unit-rate (~3 min):
# 1. both readings of the bundled head (without the penalty, outputs/tokenizers/whisper-phone-bp0;
#    and the bundled tokenizer) on the same 300 training utterances -> docs/wphone-unit-rate;
# 2. the LM's trained-on rate (its adopted_units record, else its units_per_second) times the
#    ratio of the two rates (the same utterances: their sampling cancels) is its new rate:
#    speechlm adopt-units whisper-phone-lm --units-per-second R, in place (its config only).
# Rerun after a reading changes: the trained-on rate stays in the record.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report
[ -f "$CORPUS/train.tsv" ] || { echo "wphone-unit-rate: $CORPUS/train.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
P=speechlm/pretrained
BP0=outputs/tokenizers/whisper-phone-bp0
mkdir -p docs
[ -f "$BP0/config.json" ] || "$PY" - "$BP0" <<'PY'
import sys

from speechlm.tokenizer import Tokenizer

tok = Tokenizer.load("whisper-phone").with_reading(blank_penalty=0)
print(tok.save(sys.argv[1]), tok.unit_space)
PY
report docs/wphone-unit-rate tokenizer --quiet --corpus "$CORPUS" --tokenizer "$BP0" \
  --tokenizer whisper-phone --manifest train --max-utterances 300 --no-ued
RATE=$("$PY" - docs/wphone-unit-rate.json "$P/whisper-phone-lm/config.json" <<'PY'
import json
import sys

rows = {r["tokenizer"]: r for r in json.load(open(sys.argv[1]))["reports"]}
cfg = json.load(open(sys.argv[2]))
trained = (cfg.get("adopted_units") or {}).get("units_per_second", cfg["units_per_second"])
before, now = (rows[t]["units_per_second"] for t in ("outputs/tokenizers/whisper-phone-bp0",
                                                     "whisper-phone"))
print(f"{trained * now / before:.3f}")
print(f"trained on {trained} units/s; the same utterances {before} -> {now} units/s",
      file=sys.stderr)
PY
)
$SL adopt-units whisper-phone-lm --tokenizer whisper-phone --out "$P/whisper-phone-lm" \
  --units-per-second "$RATE"
echo "docs/wphone-unit-rate.{json,md}; whisper-phone-lm: $RATE units/s"
