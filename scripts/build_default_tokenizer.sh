#!/usr/bin/env bash
# Rebuild the bundled default tokenizer (speechlm/pretrained/mfcc-k100) and the bundled sample
# prompts from the synthesized corpus in data/corpus (make corpus builds it), then report its
# metrics on the held-out test split into docs/tokenizer-mfcc-k100.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-data/corpus}
SL=.venv/bin/speechlm

$SL train tokenizer --corpus "$CORPUS" --manifest train --features mfcc --k 100 --seed 0 \
  --max-frames 1000000 --out speechlm/pretrained/mfcc-k100 --force

# samples: the first test-split sentence in three voices of three engines (never trained on)
mkdir -p samples
for voice in flite_slt fest_kal espeak_us_f2; do
  rel=$(grep -m1 "^$voice/" "$CORPUS/test.tsv" | cut -f1)
  cp "$CORPUS/wav/$rel" "samples/${voice}_$(basename "$rel")"
done

mkdir -p docs
$SL eval tokenizer --tokenizer mfcc-k100 --corpus "$CORPUS" --manifest test \
  --json docs/tokenizer-mfcc-k100.json --markdown docs/tokenizer-mfcc-k100.md
