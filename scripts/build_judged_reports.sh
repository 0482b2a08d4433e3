#!/usr/bin/env bash
# The three reports of the bundled models, judged by Whisper (issue 12), into docs/:
#   tokenizer-mfcc-k100.{json,md}     PNMI, ABX, bitrate and the unit edit distance (UED) under
#                                     pitch shift, tempo, reverberation and noise (test split)
#   vocoder-unit-vocoder.{json,md}    resynthesis: Whisper + pocketsphinx WER, what Whisper hears,
#                                     calibrated speaker similarity, DNSMOS, F0; methods world-f0,
#                                     world, griffinlim and the trivial floor (test split)
#   continue-default.{json,md}        continuations: content between floor and ceiling,
#                                     calibrated voice, loops, rate (scripts/build_continue_report.sh)
# and, when the world corpus is built (scripts/build_corpus.sh), the same resynthesis and
# continuation reports on its held-out engines and voices (Pico, Piper, MBROLA us3, never heard
# by any bundled model): *-world-heldout.{json,md}.
# Needs data/corpus (make corpus). About an hour on 2 cores with the defaults (6 utterances
# and 3 prompts per voice); PER_VOICE=10 PROMPTS=4 gives the sizes of the earlier reports.
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
PER_VOICE=${PER_VOICE:-6}
PROMPTS=${PROMPTS:-3}
[ -n "${SKIP_TOKENIZER:-}" ] || $SL eval tokenizer --tokenizer mfcc-k100 --manifest test \
  --ued-utterances 50 --json docs/tokenizer-mfcc-k100.json --markdown docs/tokenizer-mfcc-k100.md
$SL eval resynth --vocoder unit-vocoder --data test --per-voice "$PER_VOICE" \
  --json docs/vocoder-unit-vocoder.json --markdown docs/vocoder-unit-vocoder.md
bash scripts/build_continue_report.sh --per-voice "$PROMPTS"
if [ -f data/corpus-v2/heldout.tsv ]; then
  $SL eval resynth --vocoder unit-vocoder --data data/corpus-v2/heldout.tsv --per-voice 2 \
    --json docs/vocoder-unit-vocoder-world-heldout.json \
    --markdown docs/vocoder-unit-vocoder-world-heldout.md
  $SL eval continue --data data/corpus-v2/heldout.tsv --per-voice 1 --num-samples 3 --seed 0 \
    --json docs/continue-default-world-heldout.json \
    --markdown docs/continue-default-world-heldout.md
fi
