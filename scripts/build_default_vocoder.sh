#!/usr/bin/env bash
# Rebuild the bundled unit vocoder (speechlm/pretrained/phone-vocoder) the way it was made: the
# vocoder step of the switch to the bundled units (scripts/switch_default_units.sh with
# ONLY=vocoder and the bundled tokenizer as TOK, so nothing else changes):
#   configs/vocoder/phone-cpu-more.toml, 3,000 steps (VOC_STEPS) warm-started from the first phone
#   default's vocoder (outputs/baselines/phone-v1/vocoder, restored from git history by
#   scripts/restore_baselines.sh), on that vocoder's corpus analysis (data/vocoder/v2-phone-k100,
#   ~7 min, made with the phone-v1 tokenizer when missing) relabelled with the bundled units
#   (data/vocoder/v2-phone-k100-<tag>), ~60 min on one core; exported from its last weights with
#   the bundled settings; judged against phone-v1 on the same utterances, paired
#   (docs/switch-vocoder-{new,compare}-rebuild-*; RUN overrides the suffix); then its speed
#   (docs/bench-vocoder.json). ~1.5 h in all. Needs the world corpus (make corpus-world, or
#   HOURS=12.5 bash scripts/build_corpus.sh) and a clone with history.
# The first phone default's vocoder itself came from the recipe configs/vocoder/phone-cpu.toml
# over the speaker encoder of configs/speaker/cpu.toml and the waveform stage of
# configs/vocoder/hn-cpu.toml: this script as it stood at 3f384a2 (git show
# 3f384a2:scripts/build_default_vocoder.sh), which also wrote docs/vocoder-phone-vocoder.*.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-data/corpus-v2}
bash scripts/restore_baselines.sh > /dev/null
PREV=outputs/baselines/phone-v1 TOK=speechlm/pretrained/phone-k100 ONLY=vocoder \
  RUN=${RUN:--rebuild} CORPUS="$CORPUS" bash scripts/switch_default_units.sh
OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_vocoder.py --vocoder phone-vocoder \
  --data heldout --corpus "$CORPUS" --utterances 20 --json docs/bench-vocoder.json
