#!/usr/bin/env bash
# Judge one inference setting of the bundled phone-vocoder (nothing retrained), as the drawn-F0
# spread and the source-F0 weight were chosen (scripts/f0_spread_reports.sh and
# scripts/source_f0_reports.sh set the variables and run this):
#   1. choose on known voices: 40 utterances of the world corpus's valid split (held-out
#      sentences; one per identity, drawn with a fixed seed: outputs/f0-spread-eval/valid40.tsv)
#      resynthesized (eval resynth --methods METHOD) with Vocoder.set_SETTING(V) for each V of
#      VALUES, paired against V = REF -> docs/vocoder-STEM-valid-{V,compare-V}.*;
#   2. confirm the chosen one (CHOSEN, set after reading step 1; empty: stop after step 1) once
#      on voices no model here heard: the held-out engines, 2 utterances per voice, paired
#      against the bundle's own report on the same utterances (BASE, the switch's)
#      -> docs/vocoder-STEM-{V,compare-V}-heldout.*.
# ~3-5 min per value on valid, ~6-10 on held-out (2 cores). Needs the world corpus sample.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh
: "${SETTING:?e.g. f0_spread}" "${STEM:?e.g. f0-spread}" "${VALUES:?e.g. 1 0.5 0}" \
  "${REF:?the value the others are paired with}" "${METHOD:?hn (drawn F0) or hn-f0 (source F0)}"
CHOSEN=${CHOSEN:-}
BASE=${BASE:-docs/switch-vocoder-new-b6400r-heldout}
E=outputs/$STEM-eval
valid40 outputs/f0-spread-eval  # one subset for every setting

for v in $VALUES; do
  vocoder_with "$E/vocoder-$v" "$SETTING" "$v"
  report "docs/vocoder-$STEM-valid-$v" resynth --quiet --vocoder "$E/vocoder-$v" \
    --data outputs/f0-spread-eval/valid40.tsv --per-voice 1 --methods "$METHOD" --asr whisper
done
for v in $VALUES; do
  [ "$v" = "$REF" ] || compare resynth "docs/vocoder-$STEM-valid-$REF" \
    "docs/vocoder-$STEM-valid-$v" "docs/vocoder-$STEM-valid-compare-$v"
done
[ -n "$CHOSEN" ] || exit 0
vocoder_with "$E/vocoder-$CHOSEN" "$SETTING" "$CHOSEN"
resynth_heldout "docs/vocoder-$STEM-$CHOSEN-heldout" "$E/vocoder-$CHOSEN" "$METHOD"
compare resynth "$BASE" "docs/vocoder-$STEM-$CHOSEN-heldout" \
  "docs/vocoder-$STEM-compare-$CHOSEN-heldout"
