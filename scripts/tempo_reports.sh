#!/usr/bin/env bash
# The continuation's pace (Vocoder.fit_tempo): does a tempo fitted on the prompt predict how
# long the rest of an utterance lasts, and does it bring a continuation's speaking rate back to
# the prompt's? Judges the bundled default on real speech (Allison) and held-out engines.
#   bash scripts/tempo_reports.sh   (make tempo-reports; every report is kept when it exists)
# Needs data/real (make real-voice) and data/corpus-v2 (make corpus-world HOURS=12.5), and
# docs/switch-whisper-allison-continue.json, the same continuations spoken at tempo 1 (it is
# committed; scripts/switch_whisper_default.sh rebuilds it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/heldout_reports.sh
R=${REAL:-data/real}
for f in "$R/allison" "$R/others" "$CORPUS/heldout.tsv" docs/switch-whisper-allison-continue.json; do
  [ -e "$f" ] || { echo "tempo_reports.sh: $f is missing (see the header of this script)" >&2; exit 2; }
done
[ -f docs/tempo-fit.json ] || "$PY" scripts/check_tempo.py --real "$R/allison" --corpus "$CORPUS" \
  --json docs/tempo-fit.json --markdown docs/tempo-fit.md
# the same check on the phone bundle: is the pace error the units' or the duration model's?
PH=outputs/tempo-phone-model
mkdir -p "$PH"
for st in tokenizer:phone-k100 lm:phone-lm vocoder:phone-vocoder; do
  ln -sfn "$PWD/speechlm/pretrained/${st#*:}" "$PH/${st%%:*}"
done
[ -f docs/tempo-fit-phone.json ] || "$PY" scripts/check_tempo.py --model "$PH" --real "$R/allison" \
  --corpus "$CORPUS" --json docs/tempo-fit-phone.json --markdown docs/tempo-fit-phone.md
report docs/tempo-allison-continue continue --quiet --wav-dir "$R/allison" --per-voice 0 \
  --reference-voices "$R/others"
compare continue docs/switch-whisper-allison-continue docs/tempo-allison-continue \
  docs/tempo-allison-continue-compare
echo "docs/tempo-{fit,fit-phone,allison-continue,allison-continue-compare}.{json,md}"
