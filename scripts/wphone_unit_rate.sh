#!/usr/bin/env bash
# The bundled LM's unit rate, measured on the units it reads now. An LM's units_per_second is
# the rate `speechlm continue --seconds N` sizes a continuation by; the bundled whisper-phone-lm
# measured it on its training units, read without the CTC blank penalty, and kept it when it
# adopted the penalised units (make wphone-blank SHIP=1), which come faster. make
# wphone-unit-rate (~3 min):
# 1. the reading the LM trained on (TRAINED, default outputs/tokenizers/whisper-phone-bp0: the
#    bundled head without the penalty, made when missing) and the bundled tokenizer on the same
#    300 training utterances -> docs/wphone-unit-rate. TRAINED must read the unit space the
#    LM's adoption record names as its origin (exit 2, one line, otherwise: after a new head
#    ships, the bundled head is no longer the one the LM trained on; make wphone-head-forced
#    SHIP=1 keeps that one and passes it); a report of other spaces is made again;
# 2. the LM's trained-on rate (its adopted_units record, else its units_per_second) times the
#    ratio of the two rates (the same utterances: their sampling cancels) is its new rate:
#    speechlm adopt-units whisper-phone-lm --units-per-second R, in place (its config only).
# Rerun after a reading changes: the trained-on rate stays in the record.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, bundled_reading
[ -f "$CORPUS/train.tsv" ] || { echo "wphone-unit-rate: $CORPUS/train.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
P=speechlm/pretrained
BP0=outputs/tokenizers/whisper-phone-bp0
TRAINED=${TRAINED:-$BP0}
mkdir -p docs
[ -f "$TRAINED/config.json" ] || [ "$TRAINED" != "$BP0" ] || bundled_reading "$BP0"
[ -f "$TRAINED/config.json" ] || { echo "wphone-unit-rate: TRAINED=$TRAINED is no tokenizer directory" >&2; exit 2; }
# the LM's origin read by TRAINED? (exit 2 otherwise); a report of other spaces is stale
"$PY" - "$TRAINED" "$P/whisper-phone/config.json" "$P/whisper-phone-lm/config.json" \
  docs/wphone-unit-rate.json <<'PY'
import json
import os
import sys

trained, bundled, lm, report = sys.argv[1:]
space = json.load(open(f"{trained}/config.json"))["unit_space"]
cfg = json.load(open(lm))
origin = (cfg.get("adopted_units") or {}).get("from", cfg["unit_space"])
if space != origin:
    print(f"wphone-unit-rate: the LM's rate was measured on {origin}, and TRAINED={trained} "
          f"reads {space}: give TRAINED a tokenizer of the LM's training units", file=sys.stderr)
    sys.exit(2)
if os.path.exists(report):
    spaces = [r.get("unit_space") for r in json.load(open(report)).get("reports", [])]
    if spaces != [space, json.load(open(bundled))["unit_space"]]:
        os.remove(report)
        print(f"wphone-unit-rate: {report} judged {spaces}: made again", file=sys.stderr)
PY
report docs/wphone-unit-rate tokenizer --quiet --corpus "$CORPUS" --tokenizer "$TRAINED" \
  --tokenizer whisper-phone --manifest train --max-utterances 300 --no-ued
RATE=$("$PY" - docs/wphone-unit-rate.json "$P/whisper-phone-lm/config.json" <<'PY'
import json
import sys

rows = json.load(open(sys.argv[1]))["reports"]
cfg = json.load(open(sys.argv[2]))
trained = (cfg.get("adopted_units") or {}).get("units_per_second", cfg["units_per_second"])
before, now = (r["units_per_second"] for r in rows)  # TRAINED's reading, then the bundle's
print(f"{trained * now / before:.3f}")
print(f"trained on {trained} units/s; the same utterances {before} -> {now} units/s",
      file=sys.stderr)
PY
)
$SL adopt-units whisper-phone-lm --tokenizer whisper-phone --out "$P/whisper-phone-lm" \
  --units-per-second "$RATE"
echo "docs/wphone-unit-rate.{json,md}; whisper-phone-lm: $RATE units/s"
