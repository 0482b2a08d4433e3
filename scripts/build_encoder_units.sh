#!/usr/bin/env bash
# Two HuBERT iterations on CPU, each ending in a k-means tokenizer on the encoder's best layer,
# with the tokenizer metrics of each stage next to the MFCC baseline in docs/encoder-units.md.
#
#   0. baseline: eval the bundled MFCC tokenizer (mfcc-k100) on valid
#   1. iteration 1: train configs/encoder/cpu.toml (predicts mfcc-k100 frame units, ~2.2 h)
#      -> PNMI of a quick k-means per layer picks layer L1 (speechlm.train.encoder_layers)
#      -> speechlm train tokenizer --features outputs/encoder-cpu/model --layer L1
#         --out data/tokenizers/enc1-k100  -> eval
#   2. iteration 2: train configs/encoder/cpu-iter2.toml (predicts enc1-k100 frame units)
#      -> layer L2 -> data/tokenizers/enc2-k100 -> eval
#
# Every step resumes or is skipped when its output exists: rerun after a kill. Needs the corpus
# (make corpus). ~6 h on 2 cores in all. Env: K (units, default 100), EVAL_UTTS (valid
# utterances for eval, default 400), CORPUS (default data/corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
PY=.venv/bin/python
K=${K:-100}
EVAL_UTTS=${EVAL_UTTS:-400}
CORPUS=${CORPUS:-data/corpus}
mkdir -p docs outputs/eval

evaluate() {  # name tokenizer
  [ -f "outputs/eval/$1.json" ] || $SL eval tokenizer --tokenizer "$2" --manifest valid \
    --corpus "$CORPUS" --max-utterances "$EVAL_UTTS" --json "outputs/eval/$1.json" \
    --markdown "outputs/eval/$1.md" >/dev/null
}

iteration() {  # n config run_dir [--section.key=value ...]
  local n=$1 config=$2 run=$3 tok=data/tokenizers/enc$1-k$K layer
  shift 3
  $SL train encoder --config "$config" --data.corpus="$CORPUS" "$@"
  if [ ! -d "$tok" ]; then
    layer=$($PY -m speechlm.train.encoder_layers --model "$run/model" --corpus "$CORPUS" \
      --k "$K" --json "$run/layers.json" --best)
    echo "iteration $n: best layer by PNMI: $layer (see $run/layers.json)" >&2
    $SL train tokenizer --features "$run/model" --layer "$layer" --k "$K" \
      --corpus "$CORPUS" --out "$tok"
  fi
  evaluate "enc$n-k$K" "$tok"
}

evaluate mfcc-k100 mfcc-k100
iteration 1 configs/encoder/cpu.toml outputs/encoder-cpu
# iteration 2 predicts the units of iteration 1's tokenizer (cpu-iter2.toml names
# data/tokenizers/enc1-k100; with another K, point it at the matching directory)
iteration 2 configs/encoder/cpu-iter2.toml outputs/encoder-cpu-iter2 \
  --data.tokenizer="data/tokenizers/enc1-k$K" --data.units_dir="data/units/enc1-k$K-frames"

$PY - "$K" <<'PY'
import json
import sys
from pathlib import Path

from speechlm.eval.tokenizer import markdown_table

k = sys.argv[1]
names = ["mfcc-k100", f"enc1-k{k}", f"enc2-k{k}"]
reports = [json.loads(Path(f"outputs/eval/{n}.json").read_text()) for n in names]
for name, r in zip(names, reports):
    r["tokenizer"] = name
text = "# Encoder units: MFCC vs HuBERT iterations 1 and 2 (valid split)\n\n"
text += markdown_table(reports) + "\n"
Path("docs/encoder-units.md").write_text(text)
print(text)
PY
