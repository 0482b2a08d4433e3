#!/usr/bin/env bash
# The bundled pipeline judged on a real human voice (make real-voice-reports): the Asterisk
# prompts of Allison Smith (scripts/build_real_voice.sh), a voice, a recording chain and a
# speaker no model here heard, beside the synthetic held-out engines' reports.
#
#   docs/real-allison-resynth.{json,md}     every prompt (217): resynthesis with the source F0
#                                           (hn-f0) and a drawn one (hn, the LM-output path),
#                                           the trivial baseline (floor: the units shuffled) and
#                                           copy synthesis (copy-hn: the waveform stage on the
#                                           original's own log-mel and F0: the vocoder's ceiling)
#   docs/real-allison-8k-resynth.{json,md}  the same prompts from the 8 kHz telephone package
#                                           (hn-f0, floor), paired with the wideband ones
#                                           (docs/real-allison-8k-vs-wideband.{json,md})
#   docs/real-allison-oracle-phones.*       a diagnostic: the units replaced by the reference
#                                           phones' (pocketsphinx's labels; the 186 aligned
#                                           prompts; eval resynth --unit-oracle phones), paired
#                                           with the units as read (...-oracle-phones-vs-units)
#   docs/real-allison-continue.{json,md}    continuations of every prompt long enough for a 3 s
#                                           prompt and a 1 s ceiling (43)
#
# Speaker similarity is calibrated against three other real speakers (French, Italian and
# Russian prompts of the same PBX: --reference-voices data/real/others). Each report is skipped
# when its JSON exists. ~2 h on 2 cores (the first report ~50 min).
# Env: PER_VOICE (0: every prompt), CONTINUE_PER_VOICE (0: every long-enough prompt); SL, PY.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, report, compare
PER_VOICE=${PER_VOICE:-0}
CONTINUE_PER_VOICE=${CONTINUE_PER_VOICE:-0}
R=data/real

[ -f "$R/others/it_IT_m_Carlo/source.json" ] || SL=$SL bash scripts/build_real_voice.sh

report docs/real-allison-resynth resynth --quiet --wav-dir "$R/allison" \
  --per-voice "$PER_VOICE" --methods hn-f0,hn,floor,copy-hn --asr whisper \
  --reference-voices "$R/others"
report docs/real-allison-8k-resynth resynth --quiet --wav-dir "$R/allison-8k" \
  --per-voice "$PER_VOICE" --methods hn-f0,floor --asr whisper --reference-voices "$R/others"
compare resynth docs/real-allison-resynth docs/real-allison-8k-resynth \
  docs/real-allison-8k-vs-wideband
report docs/real-allison-oracle-phones resynth --quiet --wav-dir "$R/allison" \
  --per-voice "$PER_VOICE" --methods hn-f0 --asr whisper --reference-voices "$R/others" \
  --unit-oracle phones
compare resynth docs/real-allison-resynth docs/real-allison-oracle-phones \
  docs/real-allison-oracle-phones-vs-units
report docs/real-allison-continue continue --quiet --wav-dir "$R/allison" \
  --per-voice "$CONTINUE_PER_VOICE" --reference-voices "$R/others"
echo "docs/real-allison-{resynth,8k-resynth,8k-vs-wideband,oracle-phones,continue}.{json,md}"
