#!/usr/bin/env bash
# Judge the bundled vocoder's log-mel contrast (mel_contrast in its config.json: the output
# log-mel's deviations from its long-term average scaled by X) against the same vocoder at 1
# (off), both with timbre matching 0.5, on voices no model here heard: resynthesis of the world
# corpus's held-out engines (eval resynth --data heldout --per-voice 2, source F0 and drawn F0)
# and continuations of their prompts (eval continue --data heldout --per-voice 1), then the
# paired differences. The side at 1 is scripts/timbre_reports.sh's "05" reports (the same
# vocoder, timbre 0.5, contrast 1), which this script runs first when they are missing.
# Writes docs/vocoder-contrast-{12,compare}.* and docs/continue-contrast-{12,compare}.*
# (~15 min on 2 cores, ~45 more when the timbre reports are missing). Needs the world corpus.
# Env: CORPUS (data/corpus-v2), ON (the factor judged, default 1.2: the "12" files).
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
ON=${ON:-1.2}
export OMP_WAIT_POLICY=PASSIVE
[ -f docs/vocoder-timbre-05.json ] && [ -f docs/continue-timbre-05.json ] || \
  CORPUS="$CORPUS" bash scripts/timbre_reports.sh
E=outputs/contrast-eval
mkdir -p "$E"
.venv/bin/python - "$E" "$ON" <<'PY'
import sys
from speechlm.vocoder import Vocoder

e, on = sys.argv[1], float(sys.argv[2])
v = Vocoder.load("phone-vocoder").set_timbre_match(0.5).set_mel_contrast(on)
v.set_voiced_noise_cut(0).set_voice_adapt_steps(0)  # the settings of their time: no cut, no adaptation
v.save(f"{e}/vocoder-12", half=True, int8=("speaker.",))
PY
[ -f docs/vocoder-contrast-12.json ] || $SL eval resynth --quiet --vocoder "$E/vocoder-12" \
  --corpus "$CORPUS" --data heldout --per-voice 2 --methods hn-f0,hn --asr whisper \
  --json docs/vocoder-contrast-12.json --markdown docs/vocoder-contrast-12.md
[ -f docs/continue-contrast-12.json ] || $SL eval continue --quiet --vocoder "$E/vocoder-12" \
  --corpus "$CORPUS" --data heldout --per-voice 1 \
  --json docs/continue-contrast-12.json --markdown docs/continue-contrast-12.md
$SL eval compare-resynth docs/vocoder-timbre-05.json docs/vocoder-contrast-12.json \
  --json docs/vocoder-contrast-compare.json --markdown docs/vocoder-contrast-compare.md
$SL eval compare-continue docs/continue-timbre-05.json docs/continue-contrast-12.json \
  --json docs/continue-contrast-compare.json --markdown docs/continue-contrast-compare.md
