#!/usr/bin/env bash
# The continuation report of the bundled default model on held-out prompts (the first 3 s of
# test-split utterances, 4 per voice, 3 samples each), into docs/continue-default.{json,md},
# with a figure per voice in outputs/continue-figures; three of them (flite slt, festival kal,
# and the held-out flite rms) are copied to docs/figures/. About 10-15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/figures
.venv/bin/speechlm eval continue --data test --per-voice 4 --num-samples 3 --seed 0 \
  --figures outputs/continue-figures --json docs/continue-default.json \
  --markdown docs/continue-default.md "$@"
for v in flite_slt fest_kal flite_rms; do
  f=$(ls outputs/continue-figures/"$v"_arctic_*.png | head -1)
  cp "$f" docs/figures/continue-"$v".png
done
