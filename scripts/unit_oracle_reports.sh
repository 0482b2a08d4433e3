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
# Each report is skipped when its JSON exists. Needs the world corpus (make corpus-world).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, compare
E=outputs/unit-oracle
mkdir -p "$E" docs
# the held-out utterances with reference phones, as a manifest of their own
[ -f "$E/heldout-aligned.wrd" ] || "$PY" - "$CORPUS" "$E/heldout-aligned" <<'PY'
import sys

from speechlm.data.manifest import read_manifest, write_manifest

corpus, out = sys.argv[1:]
keep = [u for u in read_manifest(f"{corpus}/heldout.tsv") if u.phn_path.is_file()]
assert keep, "no held-out utterance has reference phones"
write_manifest(f"{out}.tsv", open(f"{corpus}/heldout.tsv").readline().strip(), keep)
PY
judge() {  # name [--unit-oracle MODE]
  local name=$1
  shift
  report "docs/unit-oracle-$name-heldout" resynth --quiet --vocoder phone-vocoder \
    --corpus "$CORPUS" --data "$E/heldout-aligned.tsv" --per-voice 4 --methods hn-f0 \
    --asr whisper "$@"
}
judge units
for mode in corrected phones; do
  judge "$mode" --unit-oracle "$mode"
  compare resynth docs/unit-oracle-units-heldout "docs/unit-oracle-$mode-heldout" \
    "docs/unit-oracle-compare-$mode-heldout"
done
