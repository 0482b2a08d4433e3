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
. scripts/lib/heldout_reports.sh
ON=${ON:-1.2}
[ -f docs/vocoder-timbre-05.json ] && [ -f docs/continue-timbre-05.json ] || \
  CORPUS="$CORPUS" bash scripts/timbre_reports.sh
E=outputs/contrast-eval
mkdir -p "$E"
vocoder_copy "$E/vocoder-12" 0.5 "$ON" 0 0  # the settings of their time: no cut, no adaptation
resynth_heldout docs/vocoder-contrast-12 "$E/vocoder-12" hn-f0,hn
continue_heldout docs/continue-contrast-12 "$E/vocoder-12"
compare resynth docs/vocoder-timbre-05 docs/vocoder-contrast-12 docs/vocoder-contrast-compare
compare continue docs/continue-timbre-05 docs/continue-contrast-12 docs/continue-contrast-compare
