#!/usr/bin/env bash
# The drawn-F0 path's pitch shape from the whole utterance (speechlm.prosody, issue 15): the
# drawn-F0 split (make drawn-f0-split) found the drawn contour's pitch shape costing most of a
# real voice's lost words, and a narrower draw (make wphone-f0-spread) did not take them back.
# Here an intonation model, a bidirectional GRU over the frame units, gives the vocoder the
# distributions it draws the shape from; nothing else is retrained. Each judged copy is paired
# with the default at the same drawn-F0 spread. make wphone-contour (~30 min of training on one
# core, ~5 min per spread in step 2, ~25 min for step 3 on 2 cores):
# 1. train it on the default vocoder's analysed world corpus (configs/vocoder/contour-cpu.toml
#    -> outputs/contour-wphone/model; resumes a killed run, leaves a finished one);
# 2. on known voices: for each spread S of SPREADS (default "1 0.5 0") a copy of the default
#    vocoder with it and that spread, saved as the bundle is (outputs/wphone-contour-eval/
#    vocoder-S), judged on the 40 valid utterances of outputs/f0-spread-eval (held-out
#    sentences), drawn F0 (hn), paired with the default at that spread (the contour's own
#    effect; make wphone-f0-spread) -> docs/wphone-contour-valid-S{,-compare}.{json,md}, and
#    with the default as shipped (spread 1) -> docs/wphone-contour-valid-S-vs-default.*;
# 3. CHOSEN (a spread, set after reading step 2; empty: stop): judged once on Allison's 80
#    prompts and the held-out engines, paired with the default as shipped on the same
#    utterances (the drawn-F0 split's hn) -> docs/wphone-contour-CHOSEN-{allison,heldout}
#    {,-compare}.{json,md};
# 4. with CHOSEN and CONTINUE=1: continuations of Allison's 43 long prompts by the default with
#    that vocoder (outputs/wphone-contour-eval/model-CHOSEN links the bundled tokenizer and LM
#    and the copy), paired with the default's own report on them (make wphone-default)
#    -> docs/wphone-contour-CHOSEN-allison-continue{,-compare}.{json,md} (~20 min);
# SHIP=1 (after reading steps 3 and 4; with CHOSEN=1, the bundle's spread): the contour model in
#    float16 into the bundled vocoder (speechlm/pretrained/whisper-phone-vocoder/contour, replaced
#    when present), where Vocoder.load finds it; run after make wphone-default, which rebuilds the
#    bundle without it. Then the bundle as shipped on all 217 of Allison's prompts, drawn F0,
#    paired with the default before it (make wphone-default's report on them)
#    -> docs/wphone-contour-shipped-allison{,-compare}.{json,md} (~15 min).
# Each report is kept when its JSON exists (a rerun picks up where a killed one stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/heldout_reports.sh
source scripts/lib/heldout_reports.sh
need() { [ -f "$1" ] || { echo "wphone-contour: $1 is missing: run $2" >&2; exit 2; }; }
need data/vocoder/v2-wphone-ctc/train.json "make whisper-phone"
RUN=${CONTOUR_RUN:-outputs/contour-wphone}
OMP_WAIT_POLICY=PASSIVE $SL train vocoder --config configs/vocoder/contour-cpu.toml \
  "--train.out=$RUN" --quiet > /dev/null
E=outputs/wphone-contour-eval
mkdir -p "$E"
copy() {  # copy SPREAD: the default vocoder with the contour model at that spread
  [ -d "$E/vocoder-$1" ] || "$PY" - "$E/vocoder-$1" "$RUN/model" "$1" <<'PY'
import sys

from speechlm.vocoder import Vocoder

out, contour, spread = sys.argv[1:]
# drawn_f0_weight 0: the bundle as judged here, before it spoke its drawn contour itself
voc = Vocoder.load("whisper-phone-vocoder").use_contour(contour).set_drawn_f0_weight(0)
voc.set_f0_spread(float(spread)).save(
    out, half=True, int8=("speaker.", "pre.", "post.", "duration.blocks."))
PY
}
valid40 outputs/f0-spread-eval
S=docs/wphone-contour
for s in ${SPREADS:-1 0.5 0}; do
  need "docs/vocoder-wphone-f0-spread-valid-$s.json" "make wphone-f0-spread SPREADS=$s"
  copy "$s"
  report "$S-valid-$s" resynth --quiet --vocoder "$E/vocoder-$s" \
    --data outputs/f0-spread-eval/valid40.tsv --per-voice 1 --methods hn --asr whisper
  compare resynth "docs/vocoder-wphone-f0-spread-valid-$s" "$S-valid-$s" "$S-valid-$s-compare"
  [ "$s" = 1 ] || compare resynth docs/vocoder-wphone-f0-spread-valid-1 "$S-valid-$s" \
    "$S-valid-$s-vs-default"
done
if [ -n "${SHIP:-}" ]; then
  [ "${CHOSEN:-}" = 1 ] || { echo "wphone-contour: SHIP=1 needs CHOSEN=1 (the bundle draws at spread 1)" >&2; exit 2; }
  "$PY" - "$RUN/model" speechlm/pretrained/whisper-phone-vocoder/contour <<'PY'
import sys

from speechlm.prosody import ContourModel

ContourModel.load(sys.argv[1]).save(sys.argv[2], half=True)
PY
  need docs/switch-wphone-allison.json "make wphone-default"
  report "$S-shipped-allison" resynth --quiet --vocoder whisper-phone-vocoder \
    --wav-dir data/real/allison --per-voice 0 --methods hn --asr whisper \
    --reference-voices data/real/others
  compare resynth docs/switch-wphone-allison "$S-shipped-allison" "$S-shipped-allison-compare"
fi
[ -n "${CHOSEN:-}" ] || exit 0
need docs/drawn-f0-split-allison.json "make drawn-f0-split"
need docs/drawn-f0-split-heldout.json "make drawn-f0-split"
copy "$CHOSEN"
report "$S-$CHOSEN-allison" resynth --quiet --vocoder "$E/vocoder-$CHOSEN" \
  --wav-dir data/real/allison --per-voice 80 --methods hn --asr whisper
resynth_heldout "$S-$CHOSEN-heldout" "$E/vocoder-$CHOSEN" hn
compare resynth docs/drawn-f0-split-allison "$S-$CHOSEN-allison" "$S-$CHOSEN-allison-compare"
compare resynth docs/drawn-f0-split-heldout "$S-$CHOSEN-heldout" "$S-$CHOSEN-heldout-compare"
[ -n "${CONTINUE:-}" ] || exit 0
need docs/switch-wphone-allison-continue.json "make wphone-default"
M=$E/model-$CHOSEN
wphone_model "$M" "$E/vocoder-$CHOSEN"
report "$S-$CHOSEN-allison-continue" continue --quiet --model "$M" --wav-dir data/real/allison \
  --per-voice 0 --reference-voices data/real/others
compare continue docs/switch-wphone-allison-continue "$S-$CHOSEN-allison-continue" \
  "$S-$CHOSEN-allison-continue-compare"
