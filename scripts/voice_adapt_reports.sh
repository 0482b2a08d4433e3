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
. scripts/lib/heldout_reports.sh
STEPS=${STEPS:-20}
E=outputs/voice-adapt-eval
mkdir -p "$E"
for steps in 0 "$STEPS"; do
  vocoder_copy "$E/vocoder-$steps" 0.5 1.2 1000 "$steps"
done
for side in "$STEPS" 0; do
  V="$E/vocoder-$side"
  resynth_heldout "docs/vocoder-voice-adapt-$side" "$V" hn-f0,hn
  continue_heldout "docs/continue-voice-adapt-$side" "$V"
  resynth_heldout "docs/vocoder-voice-adapt-other-$side" "$V" hn-f0,hn --voice-from other
done
compare resynth docs/vocoder-voice-adapt-other-0 "docs/vocoder-voice-adapt-other-$STEPS" \
  docs/vocoder-voice-adapt-other-compare
compare resynth docs/vocoder-voice-adapt-0 "docs/vocoder-voice-adapt-$STEPS" \
  docs/vocoder-voice-adapt-compare
compare continue docs/continue-voice-adapt-0 "docs/continue-voice-adapt-$STEPS" \
  docs/continue-voice-adapt-compare
