#!/usr/bin/env bash
# Phone labels for the world corpus's voices whose engine reports none (espeak-ng, RHVoice: 15
# of the 27 training voices), by forced alignment with the bundled phone encoder
# (speechlm corpus align; speechlm/data/align.py), and how good such labels are where the
# engine's are known:
#   data/align-v2/                     the train split's labels (data.forced_alignments=...)
#   docs/forced-alignment-heldout.*    held-out voices: forced vs argmax labels against the engine's
#   docs/forced-alignment-test.*       the same on the seen voices' test sentences
# ~4 min on 2 cores; resumable (an utterance with a row in OUT/align.tsv is skipped).
# ENCODER (default phone-k100) aligns with another phone encoder; with it give OUT, CHECK and DOCS
# (the reports' prefix) of their own, e.g. phone-cmn-long's encoder:
#   ENCODER=outputs/encoder-phone-cmn-long/model OUT=data/align-cmn-long \
#     CHECK=outputs/align-check-cmn-long DOCS=docs/forced-alignment-cmn-long \
#     bash scripts/build_forced_alignments.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
ENCODER=${ENCODER:-phone-k100}
OUT=${OUT:-data/align-v2}
CHECK=${CHECK:-outputs/align-check}
DOCS=${DOCS:-docs/forced-alignment}
export OMP_WAIT_POLICY=PASSIVE

$SL corpus align --corpus "$CORPUS" --encoder "$ENCODER" --manifest train --out "$OUT" -q \
  > /dev/null
for split in heldout test; do
  $SL corpus align --corpus "$CORPUS" --encoder "$ENCODER" --manifest "$split" --all \
    --out "$CHECK/$split" --markdown "$DOCS-$split.md" -q > /dev/null
  cp "$CHECK/$split/align.json" "$DOCS-$split.json"
done
