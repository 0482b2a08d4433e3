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
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
ON=${ON:-0.5}
NOISES=${NOISES:-noise20dB noise10dB reverb}
PROMPT_NOISES=${PROMPT_NOISES:-noise20dB}
export OMP_WAIT_POLICY=PASSIVE
E=outputs/timbre-eval
N=docs/timbre-noise
mkdir -p "$E" docs "$N"
# two copies of the bundled vocoder that differ only in the setting
.venv/bin/python - "$E" "$ON" <<'PY'
import sys
from speechlm.vocoder import Vocoder

e, on = sys.argv[1], float(sys.argv[2])
for name, strength in (("off", 0.0), ("05", on)):
    v = Vocoder.load("phone-vocoder").set_timbre_match(strength).set_mel_contrast(1.0)
    v.set_voiced_noise_cut(0).set_voice_adapt_steps(0)  # their time's: no cut, no adaptation
    v.save(f"{e}/vocoder-{name}", half=True, int8=("speaker.",))
PY
for name in off 05; do
  [ -f "docs/vocoder-timbre-$name.json" ] || $SL eval resynth --quiet --vocoder "$E/vocoder-$name" \
    --corpus "$CORPUS" --data heldout --per-voice 2 --methods hn-f0,hn --asr whisper \
    --json "docs/vocoder-timbre-$name.json" --markdown "docs/vocoder-timbre-$name.md"
  [ -f "docs/continue-timbre-$name.json" ] || $SL eval continue --quiet \
    --vocoder "$E/vocoder-$name" --corpus "$CORPUS" --data heldout --per-voice 1 \
    --json "docs/continue-timbre-$name.json" --markdown "docs/continue-timbre-$name.md"
done
$SL eval compare-resynth docs/vocoder-timbre-off.json docs/vocoder-timbre-05.json \
  --json docs/vocoder-timbre-compare.json --markdown docs/vocoder-timbre-compare.md
$SL eval compare-continue docs/continue-timbre-off.json docs/continue-timbre-05.json \
  --json docs/continue-timbre-compare.json --markdown docs/continue-timbre-compare.md
for noise in $NOISES; do
  for name in off 05; do
    [ -f "$N/resynth-$name-$noise.json" ] || $SL eval resynth --quiet \
      --vocoder "$E/vocoder-$name" --corpus "$CORPUS" --data heldout --per-voice 2 --methods hn \
      --asr whisper --reference-perturb "$noise" --json "$N/resynth-$name-$noise.json" \
      --markdown "$N/resynth-$name-$noise.md"
  done
  $SL eval compare-resynth "$N/resynth-off-$noise.json" "$N/resynth-05-$noise.json" \
    --json "$N/resynth-compare-$noise.json" --markdown "$N/resynth-compare-$noise.md"
done
for noise in $PROMPT_NOISES; do
  for name in off 05; do
    [ -f "$N/continue-$name-$noise.json" ] || $SL eval continue --quiet \
      --vocoder "$E/vocoder-$name" --corpus "$CORPUS" --data heldout --per-voice 1 \
      --prompt-perturb "$noise" --json "$N/continue-$name-$noise.json" \
      --markdown "$N/continue-$name-$noise.md"
  done
  $SL eval compare-continue "$N/continue-off-$noise.json" "$N/continue-05-$noise.json" \
    --json "$N/continue-compare-$noise.json" --markdown "$N/continue-compare-$noise.md"
done
