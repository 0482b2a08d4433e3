#!/usr/bin/env bash
# Would resynthesis keep the words if the encoder heard every phone right (issue 15's WER against
# issue 14's units)? The bundled pipeline's resynthesis of the held-out engines' aligned voices
# (MBROLA us3, Piper joe; Pico has no reference phones), 4 utterances per voice, source F0,
# judged by Whisper, with the units as the tokenizer reads them and read by the reference phones
# (eval resynth --unit-oracle: 'corrected' replaces the frames whose unit belongs to another
# phone, 'phones' gives every frame its phone's most frequent unit), paired on the same
# utterances:
#   bash scripts/unit_oracle_reports.sh     (make unit-oracle; ~30 min on 2 cores)
# -> docs/unit-oracle-{units,corrected,phones}-heldout.*,
#    docs/unit-oracle-compare-{corrected,phones}-heldout.*
# SPLIT=test PER_VOICE=1 MODES=phones asks the same of known identities' held-out sentences
# (docs/unit-oracle-*-test.*); MODES (default "corrected phones") picks the oracle readings.
# Each report is skipped when its JSON exists. Needs the world corpus (make corpus-world).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, compare
E=outputs/unit-oracle
SPLIT=${SPLIT:-heldout}
PER_VOICE=${PER_VOICE:-4}
MODES=${MODES:-corrected phones}
mkdir -p "$E" docs
# the held-out utterances with reference phones, as a manifest of their own
[ -f "$E/$SPLIT-aligned.wrd" ] || "$PY" - "$CORPUS/$SPLIT.tsv" "$E/$SPLIT-aligned" <<'PY'
import sys

from speechlm.data.manifest import read_manifest, write_manifest

manifest, out = sys.argv[1:]
keep = [u for u in read_manifest(manifest) if u.phn_path.is_file()]
assert keep, f"no utterance of {manifest} has reference phones"
write_manifest(f"{out}.tsv", open(manifest).readline().strip(), keep)
PY
judge() {  # name [--unit-oracle MODE]
  local name=$1
  shift
  report "docs/unit-oracle-$name-$SPLIT" resynth --quiet --vocoder phone-vocoder \
    --corpus "$CORPUS" --data "$E/$SPLIT-aligned.tsv" --per-voice "$PER_VOICE" \
    --methods hn-f0 --asr whisper "$@"
}
judge units
for mode in $MODES; do
  judge "$mode" --unit-oracle "$mode"
  compare resynth "docs/unit-oracle-units-$SPLIT" "docs/unit-oracle-$mode-$SPLIT" \
    "docs/unit-oracle-compare-$mode-$SPLIT"
done
