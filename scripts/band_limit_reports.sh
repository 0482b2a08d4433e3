#!/usr/bin/env bash
# The bundled pipeline's resynthesis with the tokenizer's input band-limited (`--band-limit`,
# the cut-off chosen on the valid split by scripts/eval_tokenizer_input.sh: 7200 Hz for
# phone-k100) against the full band, on the held-out engines (2 utterances per voice, Whisper),
# paired per utterance:
#   docs/band-vocoder-{CUT,full}-heldout.{md,json}, docs/band-vocoder-compare-CUT-heldout.*
# SPLITS="heldout test" adds the seen voices' held-out sentences (1 per voice). ~12 min per
# report on 2 cores; a report whose JSON exists is kept.
# SWITCH=outputs/switch/new (a stage bundle left by `make switch-units`: the phone-cmn-long
# tokenizer, with a vocoder trained on its units) judges that bundle's resynthesis with its
# tokenizer's input limited at SWITCH_CUT (6400 Hz: phone-cmn-long's valid choice) against
# its full-band report of the switch, docs/switch-vocoder-new-heldout.json:
#   docs/band-switch-SWITCH_CUT-heldout.*, docs/band-switch-compare-SWITCH_CUT-heldout.*, and
# against the bundled pipeline's full-band report: docs/band-switch-vs-bundled-SWITCH_CUT-heldout.*
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, resynth_heldout, compare
CUT=${CUT:-7200}
for split in ${SPLITS:-heldout}; do
  per=2
  [ "$split" = heldout ] || per=1
  report "docs/band-vocoder-$CUT-$split" resynth --quiet --vocoder phone-vocoder \
    --corpus "$CORPUS" --data "$split" --per-voice "$per" --methods hn-f0,hn --asr whisper \
    --band-limit "$CUT"
  report "docs/band-vocoder-full-$split" resynth --quiet --vocoder phone-vocoder \
    --corpus "$CORPUS" --data "$split" --per-voice "$per" --methods hn-f0,hn --asr whisper
  compare resynth "docs/band-vocoder-full-$split" "docs/band-vocoder-$CUT-$split" \
    "docs/band-vocoder-compare-$CUT-$split"
done
if [ -n "${SWITCH:-}" ]; then
  SWITCH_CUT=${SWITCH_CUT:-6400}
  report "docs/band-switch-$SWITCH_CUT-heldout" resynth --quiet --vocoder "$SWITCH/phone-vocoder" \
    --tokenizer "$SWITCH/phone-k100" --corpus "$CORPUS" --data heldout --per-voice 2 \
    --methods hn-f0,hn --asr whisper --band-limit "$SWITCH_CUT"
  compare resynth docs/switch-vocoder-new-heldout "docs/band-switch-$SWITCH_CUT-heldout" \
    "docs/band-switch-compare-$SWITCH_CUT-heldout"
  # and against the bundled pipeline at its full band (the loop above, CUT's split heldout)
  compare resynth docs/band-vocoder-full-heldout "docs/band-switch-$SWITCH_CUT-heldout" \
    "docs/band-switch-vs-bundled-$SWITCH_CUT-heldout"
fi
