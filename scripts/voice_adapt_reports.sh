#!/usr/bin/env bash
# Judge voice adaptation (voice_adapt_steps in the vocoder's config.json: Vocoder.adapt_voice
# fits the speaker vector and the decoder's FiLM offsets to the voice reference's own log-mel)
# against the same vocoder without it, on voices no model here heard: resynthesis of the world
# corpus's held-out engines (eval resynth --data heldout --per-voice 2, source F0 and drawn F0)
# and continuations of their prompts (eval continue --data heldout --per-voice 1), then the
# paired differences. Resynthesis runs twice: with the utterance itself as the voice reference
# (what eval resynth does by default, where adaptation sees the very log-mel it re-creates) and
# with another utterance of the same voice (--voice-from other: the fair test; the "-other"
# files). Both sides run here, on the same corpus build: "0" is the bundled settings without
# adaptation (timbre 0.5, contrast 1.2, voiced-noise cut 1000 Hz), "STEPS" the same with it.
# Writes docs/{vocoder,continue}-voice-adapt-{0,STEPS,compare}.* and
# docs/vocoder-voice-adapt-other-{0,STEPS,compare}.* (~55 min on 2 cores).
# Needs the world corpus. Env: CORPUS (data/corpus-v2), STEPS (default 20: the "20" files).
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
STEPS=${STEPS:-20}
export OMP_WAIT_POLICY=PASSIVE
E=outputs/voice-adapt-eval
mkdir -p "$E"
.venv/bin/python - "$E" "$STEPS" <<'PY'
import sys
from speechlm.vocoder import Vocoder

e = sys.argv[1]
for steps in (0, int(sys.argv[2])):
    v = Vocoder.load("phone-vocoder").set_timbre_match(0.5).set_mel_contrast(1.2)
    v = v.set_voiced_noise_cut(1000).set_voice_adapt_steps(steps)
    v.save(f"{e}/vocoder-{steps}", half=True, int8=("speaker.",))
PY
for side in "$STEPS" 0; do
  V="$E/vocoder-$side"
  [ -f "docs/vocoder-voice-adapt-$side.json" ] || $SL eval resynth --quiet --vocoder "$V" \
    --corpus "$CORPUS" --data heldout --per-voice 2 --methods hn-f0,hn --asr whisper \
    --json "docs/vocoder-voice-adapt-$side.json" --markdown "docs/vocoder-voice-adapt-$side.md"
  [ -f "docs/continue-voice-adapt-$side.json" ] || $SL eval continue --quiet --vocoder "$V" \
    --corpus "$CORPUS" --data heldout --per-voice 1 \
    --json "docs/continue-voice-adapt-$side.json" --markdown "docs/continue-voice-adapt-$side.md"
  [ -f "docs/vocoder-voice-adapt-other-$side.json" ] || $SL eval resynth --quiet --vocoder "$V" \
    --corpus "$CORPUS" --data heldout --per-voice 2 --methods hn-f0,hn --asr whisper \
    --voice-from other --json "docs/vocoder-voice-adapt-other-$side.json" \
    --markdown "docs/vocoder-voice-adapt-other-$side.md"
done
$SL eval compare-resynth docs/vocoder-voice-adapt-other-0.json \
  "docs/vocoder-voice-adapt-other-$STEPS.json" --json docs/vocoder-voice-adapt-other-compare.json \
  --markdown docs/vocoder-voice-adapt-other-compare.md
$SL eval compare-resynth docs/vocoder-voice-adapt-0.json "docs/vocoder-voice-adapt-$STEPS.json" \
  --json docs/vocoder-voice-adapt-compare.json --markdown docs/vocoder-voice-adapt-compare.md
$SL eval compare-continue docs/continue-voice-adapt-0.json \
  "docs/continue-voice-adapt-$STEPS.json" \
  --json docs/continue-voice-adapt-compare.json --markdown docs/continue-voice-adapt-compare.md
