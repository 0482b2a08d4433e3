#!/usr/bin/env bash
# The continuation report of the bundled default model on prompts of voices no model here heard:
# the first 3 s of one held-out-engine utterance per voice identity of the world corpus (31
# identities of Pico, Piper and MBROLA us3), 2 samples each, into docs/continue-default.{json,md},
# with a figure per voice in outputs/continue-figures-v2; one per engine is copied to
# docs/figures/. About 15 minutes on 2 cores. Needs the world corpus (make corpus-world, or
# HOURS=12 bash scripts/build_corpus.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-data/corpus-v2}
mkdir -p docs/figures
.venv/bin/speechlm eval continue --corpus "$CORPUS" --data heldout --per-voice 1 \
  --num-samples 2 --seed 0 --figures outputs/continue-figures-v2 \
  --json docs/continue-default.json --markdown docs/continue-default.md "$@"
for v in mbrola_us3 pico_us piper_joe; do
  f=$(ls outputs/continue-figures-v2/"$v"_*.png | head -1)
  cp "$f" docs/figures/continue-"$v".png
done
