#!/usr/bin/env bash
# Train the unit LM on a lent GPU machine (the device tool), in one run of under 10 minutes:
#   1. a 25M-parameter model (8 x 512, dropout 0.2, bf16), to see what width buys on this corpus;
#   2. the CPU recipe's architecture trained 5x longer than the CPU recipe can afford;
# then held-out test perplexity of both. Needs the unit shards (data/units/mfcc-k100-dedup,
# made by `speechlm train lm` on the CPU) and, on a machine without soundfile, its wheels in
# .whl/ (see ../shared/GPU.md). Results go to $OUT (default outputs/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import soundfile" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PWD:/tmp/site"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
GPU_STEPS=${GPU_STEPS:-3000}
CPU_ARCH_STEPS=${CPU_ARCH_STEPS:-6000}
EXTRA=${EXTRA:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true

"$PYTHON" -m speechlm.train.lm --config configs/lm/gpu.toml -q --train.out="$OUT/lm-gpu" \
  --train.max_steps="$GPU_STEPS" --model.block_size=512 --model.n_layer=8 --model.n_head=8 \
  --model.n_embd=512 --model.dropout=0.2 --train.batch_size=64 --train.lr=1e-3 \
  --train.min_lr=5e-5 --train.warmup_steps=200 --train.dtype=bfloat16 $EXTRA
"$PYTHON" -m speechlm.train.lm --config configs/lm/cpu.toml -q --train.out="$OUT/lm-cpuarch" \
  --train.max_steps="$CPU_ARCH_STEPS" --train.device=auto --train.threads=0 \
  --train.eval_interval=250 --train.ckpt_interval=1000 $EXTRA

"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
from speechlm.eval.lm import perplexity
from speechlm.lm import LanguageModel

out = Path(sys.argv[1])
report = {}
for run in ("lm-gpu", "lm-cpuarch"):
    lm = LanguageModel.load(str(out / run / "model"), device="cuda" if torch.cuda.is_available() else "cpu")
    model, cfg = lm.model, lm.config
    report[run] = {"params": model.num_params(), "training": cfg["training"],
                   "test": perplexity(model, "data/units/mfcc-k100-dedup", "test", progress=False)}
    print(run, json.dumps(report[run]["test"]))
(out / "report.json").write_text(json.dumps(report, indent=2))
# the small model comes back in float16 (the transfer limit is 16 MB a file)
sd = load_file(str(out / "lm-cpuarch" / "model" / "model.safetensors"))
save_file({k: v.half() for k, v in sd.items()}, str(out / "lm-cpuarch-fp16.safetensors"))
(out / "lm-cpuarch-config.json").write_text((out / "lm-cpuarch" / "model" / "config.json").read_text())
PY
cp "$OUT/lm-gpu/log.jsonl" "$OUT/lm-gpu-log.jsonl"
cp "$OUT/lm-cpuarch/log.jsonl" "$OUT/lm-cpuarch-log.jsonl"
