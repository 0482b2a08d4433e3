#!/usr/bin/env bash
# Rebuild the bundled unit LM (speechlm/pretrained/phone-lm) the way it was made: the LM step of
# the switch to the bundled units (scripts/switch_default_units.sh with ONLY=lm and the bundled
# tokenizer as TOK, so nothing else changes): configs/lm/phone-cpu.toml (2,000 steps; LM_STEPS)
# on the bundled units of the world corpus's 12.5 h sample (tokenized once into
# data/units/v2-phone-k100-<tag>-{frames,dedup}, ~7 min; ~20 min of training on one core),
# exported from its best weights in float16, and scored against the first phone default's LM
# (outputs/baselines/phone-v1/lm) on the probes built from the held-out engines (data/probes-v2,
# built when missing): docs/switch-lm-new-rebuild.* (RUN overrides the suffix) beside
# docs/switch-lm-prev.*. ~45 min. Needs the world corpus (make corpus-world, or HOURS=12.5 bash
# scripts/build_corpus.sh) and a clone with history.
# The reports of the first phone default's LM (docs/lm-phone-lm.*, docs/lm-unit-lm-v2.*) came
# from this script as it stood at fedb187 (git show fedb187:scripts/build_default_lm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-data/corpus-v2}
bash scripts/restore_baselines.sh > /dev/null
PREV=outputs/baselines/phone-v1 TOK=speechlm/pretrained/phone-k100 ONLY=lm \
  RUN=${RUN:--rebuild} CORPUS="$CORPUS" bash scripts/switch_default_units.sh
