#!/usr/bin/env bash
# Rebuild the bundled unit LM (speechlm/pretrained/phone-lm) with the CPU recipe
# configs/lm/phone-cpu.toml on the phone-k100 units of the world corpus (~7 min to tokenize the
# 12.5 h sample, then ~30 min of training on one core; resumes if killed), build the probe
# sets (in-vocabulary word / sentence pairs spoken by the corpus's held-out engines) and report
# its metrics into docs/lm-phone-lm.{json,md}, with the former default LM (mfcc units) beside it
# in docs/lm-unit-lm-v2.{json,md}. Needs the world corpus (make corpus-world, or
# HOURS=12 bash scripts/build_corpus.sh) and the bundled phone-k100 tokenizer.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-data/corpus-v2}
. scripts/lib/heldout_reports.sh  # SL, PY, OMP_WAIT_POLICY=PASSIVE, export_lm_half
$SL train lm --config configs/lm/phone-cpu.toml --data.corpus="$CORPUS"
export_lm_half outputs/lm-phone-cpu speechlm/pretrained/phone-lm  # float16, best on valid
$SL eval build-probes --out data/probes-v2 --corpus "$CORPUS" --voices pico_us,piper_joe,mbrola_us3
mkdir -p docs
$SL eval lm --model phone-lm --corpus "$CORPUS" --probes data/probes-v2 \
  --json docs/lm-phone-lm.json --markdown docs/lm-phone-lm.md
# the former default LM on the same corpus and probes (its mfcc-k100 units of the world corpus)
bash scripts/restore_baselines.sh >/dev/null
$SL eval lm --model outputs/baselines/unit-lm --corpus "$CORPUS" \
  --units-dir data/units/v2-mfcc-k100-dedup --probes data/probes-v2 \
  --json docs/lm-unit-lm-v2.json --markdown docs/lm-unit-lm-v2.md
