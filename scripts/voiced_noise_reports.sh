#!/usr/bin/env bash
# Judge the waveform stage's voiced-noise cut (voiced_noise_cut_hz in the vocoder's config.json:
# the harmonic-plus-noise stage mutes its noise filter below that many Hz in voiced frames)
# against the same vocoder without it, on voices no model here heard: resynthesis of the world
# corpus's held-out engines (eval resynth --data heldout --per-voice 2, source F0 and drawn F0)
# and continuations of their prompts (eval continue --data heldout --per-voice 1), then the
# paired differences. The side without it is scripts/contrast_reports.sh's "12" reports (the
# bundled settings before the cut: timbre 0.5, contrast 1.2), which this script runs first when
# they are missing. Writes docs/vocoder-voiced-noise-{1000,compare}.* and
# docs/continue-voiced-noise-{1000,compare}.*, and the waveform stage's copy synthesis (the
# original's own log-mel + F0, no units: its ceiling) without and with the cut,
# docs/vocoder-voiced-noise-copy-{0,1000}.* (~25 min on 2 cores). Needs the world corpus.
# Env: CORPUS (data/corpus-v2), CUT (Hz, default 1000: the "1000" files).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh
CUT=${CUT:-1000}
[ -f docs/vocoder-contrast-12.json ] && [ -f docs/continue-contrast-12.json ] || \
  CORPUS="$CORPUS" bash scripts/contrast_reports.sh
E=outputs/voiced-noise-eval
mkdir -p "$E"
V="$E/vocoder-$CUT"
vocoder_copy "$V" 0.5 1.2 "$CUT" 0  # the settings of their time: no voice adaptation
resynth_heldout "docs/vocoder-voiced-noise-$CUT" "$V" hn-f0,hn
continue_heldout "docs/continue-voiced-noise-$CUT" "$V"
for side in 0 "$CUT"; do
  [ "$side" = 0 ] && V0=outputs/contrast-eval/vocoder-12 || V0="$V"
  resynth_heldout "docs/vocoder-voiced-noise-copy-$side" "$V0" copy-hn
done
compare resynth docs/vocoder-contrast-12 "docs/vocoder-voiced-noise-$CUT" \
  docs/vocoder-voiced-noise-compare
compare continue docs/continue-contrast-12 "docs/continue-voiced-noise-$CUT" \
  docs/continue-voiced-noise-compare
