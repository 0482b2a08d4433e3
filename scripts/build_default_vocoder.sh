#!/usr/bin/env bash
# Rebuild the bundled unit vocoder (speechlm/pretrained/unit-vocoder) with the CPU recipe
# (analysis of the corpus ~20 min, then ~45-60 min of training on 2 cores; resumes if killed),
# then judge it on held-out data into docs/vocoder-unit-vocoder.{json,md} and measure its speed
# into docs/bench-vocoder.json. Needs the corpus (make corpus) and the bundled tokenizer.
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
OMP_WAIT_POLICY=PASSIVE $SL train vocoder --config configs/vocoder/cpu.toml
# ship the best-on-valid weights in float16 (inference computes in float32)
.venv/bin/python - <<'PY'
from speechlm.vocoder import Vocoder

v = Vocoder.load("outputs/vocoder-cpu/model")
v.save("speechlm/pretrained/unit-vocoder", half=True)
print(v.training)
PY
mkdir -p docs
$SL eval resynth --vocoder unit-vocoder --data test --per-voice 10 \
  --json docs/vocoder-unit-vocoder.json --markdown docs/vocoder-unit-vocoder.md
.venv/bin/python benchmarks/bench_vocoder.py --vocoder unit-vocoder --json docs/bench-vocoder.json
