#!/usr/bin/env bash
# Rebuild the bundled unit LM (speechlm/pretrained/unit-lm) with the CPU recipe (about an hour on
# 2 cores; resumes if killed), build the probe sets, and report its metrics on held-out data
# into docs/lm-unit-lm.{json,md}. Needs the corpus (make corpus) and the bundled tokenizer.
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
$SL train lm --config configs/lm/cpu.toml
rm -rf speechlm/pretrained/unit-lm
cp -r outputs/lm-cpu/model speechlm/pretrained/unit-lm
$SL eval build-probes --out data/probes
mkdir -p docs
$SL eval lm --model unit-lm --probes data/probes --json docs/lm-unit-lm.json \
  --markdown docs/lm-unit-lm.md
