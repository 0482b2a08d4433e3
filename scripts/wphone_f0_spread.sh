#!/usr/bin/env bash
# The drawn F0 contour's spread (f0_spread: 1 draws each frame's log-F0, 0 takes each frame's
# median) on the default vocoder, whisper-phone-vocoder, nothing retrained: the drawn-F0 split
# (make drawn-f0-split) found the drawn pitch, not its voicing, costing most of the real voice's
# lost words. make wphone-f0-spread (~15 min for step 1, ~20 for step 2 on 2 cores):
# 1. chosen on known voices: SPREADS (default 1 0.5 0) on the 40 valid utterances of
#    outputs/f0-spread-eval (scripts/vocoder_setting_reports.sh), paired with 1
#    -> docs/vocoder-wphone-f0-spread-valid-*;
# 2. CHOSEN (set after reading step 1; empty: stop) judged once on the drawn-F0 split's
#    utterances, Allison's 80 prompts and the held-out engines, and paired with the split's
#    hn (spread 1) -> docs/wphone-f0-spread-CHOSEN-{allison,heldout}{,-compare}.
# Each report is kept when its JSON exists (a rerun picks up where a killed one stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/heldout_reports.sh
source scripts/lib/heldout_reports.sh
export VOCODER_BASE=whisper-phone-vocoder VOCODER_INT8="speaker. pre. post. duration.blocks."
SETTING=f0_spread STEM=wphone-f0-spread VALUES=${SPREADS:-1 0.5 0} REF=1 METHOD=hn CHOSEN= \
  bash scripts/vocoder_setting_reports.sh
[ -n "${CHOSEN:-}" ] || exit 0
for f in docs/drawn-f0-split-allison.json docs/drawn-f0-split-heldout.json; do
  [ -f "$f" ] || { echo "wphone-f0-spread: $f is missing: run make drawn-f0-split" >&2; exit 2; }
done
V=outputs/wphone-f0-spread-eval/vocoder-$CHOSEN
vocoder_with "$V" f0_spread "$CHOSEN"
S=docs/wphone-f0-spread-$CHOSEN
report "$S-allison" resynth --quiet --vocoder "$V" --wav-dir data/real/allison --per-voice 80 \
  --methods hn --asr whisper
resynth_heldout "$S-heldout" "$V" hn
compare resynth docs/drawn-f0-split-allison "$S-allison" "$S-compare-allison"
compare resynth docs/drawn-f0-split-heldout "$S-heldout" "$S-compare-heldout"
