#!/usr/bin/env bash
# Rebuild the bundled unit LM (speechlm/pretrained/unit-lm) with the CPU recipe (about an hour on
# 2 cores; resumes if killed), build the probe sets, and report its metrics on held-out data
# into docs/lm-unit-lm.{json,md}. Needs the corpus (make corpus) and the bundled tokenizer.
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
$SL train lm --config configs/lm/cpu.toml
# ship the best-on-valid weights in float16 (half the size in git; LanguageModel.load computes in float32,
# and test perplexity is unchanged to the reported digits)
.venv/bin/python - <<'PY'
import json

from speechlm import checkpoint

cfg, tensors, _ = checkpoint.load_stage("outputs/lm-cpu/model", "lm")
cfg.pop("kind"), cfg.pop("format_version")
cfg["stored_dtype"] = "float16"
checkpoint.save_stage("speechlm/pretrained/unit-lm", "lm", cfg,
                      {k: v.half() for k, v in tensors.items()})
print(json.dumps(cfg["training"]))
PY
$SL eval build-probes --out data/probes
mkdir -p docs
$SL eval lm --model unit-lm --probes data/probes --json docs/lm-unit-lm.json \
  --markdown docs/lm-unit-lm.md
