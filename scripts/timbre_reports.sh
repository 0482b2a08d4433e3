#!/usr/bin/env bash
# Judge the bundled vocoder's timbre matching (timbre_match in its config.json) against the same
# vocoder with it off, on voices no model here heard: resynthesis of the world corpus's held-out
# engines (eval resynth --data heldout --per-voice 2, source F0 and drawn F0) and continuations
# of their prompts (eval continue --data heldout --per-voice 1), then the paired differences
# (eval compare-resynth / compare-continue). Writes docs/vocoder-timbre-{off,05,compare}.* and
# docs/continue-timbre-{off,05,compare}.*. Then the same resynthesis (drawn F0, the LM path)
# with noisy voice references (eval resynth --reference-perturb: white noise at 20 and 10 dB
# SNR, and sox reverb, in the reference only) into
# docs/timbre-noise/resynth-{off,05,compare}-NOISE.*, and continuations of noisy prompts
# (eval continue --prompt-perturb: the units and the voice from the noisy prompt) into
# docs/timbre-noise/continue-{off,05,compare}-NOISE.* (~75 min on 2 cores in all). Both
# settings keep mel_contrast at 1 and no voiced-noise cut. Needs the world corpus.
# Env: CORPUS (data/corpus-v2), ON (the setting judged, default 0.5: the "05" files),
# NOISES ("noise20dB noise10dB reverb"), PROMPT_NOISES ("noise20dB").
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh
ON=${ON:-0.5}
NOISES=${NOISES:-noise20dB noise10dB reverb}
PROMPT_NOISES=${PROMPT_NOISES:-noise20dB}
E=outputs/timbre-eval
N=docs/timbre-noise
mkdir -p "$E" docs "$N"
# two copies of the bundled vocoder that differ only in the setting; mel_contrast 1, no cut, no
# adaptation: the settings of their time
vocoder_copy "$E/vocoder-off" 0 1 0 0
vocoder_copy "$E/vocoder-05" "$ON" 1 0 0
for name in off 05; do
  resynth_heldout "docs/vocoder-timbre-$name" "$E/vocoder-$name" hn-f0,hn
  continue_heldout "docs/continue-timbre-$name" "$E/vocoder-$name"
done
compare resynth docs/vocoder-timbre-off docs/vocoder-timbre-05 docs/vocoder-timbre-compare
compare continue docs/continue-timbre-off docs/continue-timbre-05 docs/continue-timbre-compare
for noise in $NOISES; do
  for name in off 05; do
    resynth_heldout "$N/resynth-$name-$noise" "$E/vocoder-$name" hn --reference-perturb "$noise"
  done
  compare resynth "$N/resynth-off-$noise" "$N/resynth-05-$noise" "$N/resynth-compare-$noise"
done
for noise in $PROMPT_NOISES; do
  for name in off 05; do
    continue_heldout "$N/continue-$name-$noise" "$E/vocoder-$name" --prompt-perturb "$noise"
  done
  compare continue "$N/continue-off-$noise" "$N/continue-05-$noise" "$N/continue-compare-$noise"
done
