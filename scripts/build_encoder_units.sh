#!/usr/bin/env bash
# HuBERT-style encoder units vs the MFCC units, on held-out test data, end to end on CPU:
#
#   1. iteration 1: train configs/encoder/cpu-mel.toml (predicts mfcc-k100 frame units)
#      -> PNMI of a quick k-means per layer on valid picks layer L1 (speechlm.eval.encoder_layers)
#      -> speechlm train tokenizer --features outputs/encoder-cpu-mel/model --layer L1
#         --out data/tokenizers/encmel1-k100
#   2. iteration 2 (ITER2=1): configs/encoder/cpu-mel-iter2.toml predicts encmel1-k100 units
#      -> data/tokenizers/encmel2-k100
#   3. speechlm eval tokenizer --manifest test for mfcc-k100, logmel-k100 (k-means on the
#      encoder's log-mel input: the front end's share of any gain) and each iteration's units
#   4. resynthesis WER: a vocoder trained on each unit set with the same recipe
#      (configs/vocoder/cpu.toml for VOC_STEPS steps; the WORLD/mel analysis of the MFCC cache is
#      reused via data.feats_from), judged by speechlm eval resynth (world-f0, 10 test utterances
#      per voice). At the recipe's 4000 steps the MFCC vocoder is the bundled unit-vocoder and
#      its report, docs/vocoder-unit-vocoder.json, is the MFCC row.
#   5. the side-by-side table -> docs/encoder-units.md (+ .json)
#
# Every step resumes or is skipped when its output exists: rerun after a kill. Needs the corpus
# (make corpus). Cost on 2 cores: ~30 min per encoder iteration, ~10 min per tokenizer + its
# evaluation, ~1 s per vocoder step + ~10 min per resynthesis report. Env: K (default 100),
# ITER2 (default 0), VOCODERS (default 1), VOC_STEPS (default 4000).
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
PY=.venv/bin/python
K=${K:-100}
ITER2=${ITER2:-0}
VOCODERS=${VOCODERS:-1}
VOC_STEPS=${VOC_STEPS:-4000}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p docs

evaluate() {  # name tokenizer
  [ -f "docs/tokenizer-$1.json" ] || $SL eval tokenizer --tokenizer "$2" --manifest test \
    --json "docs/tokenizer-$1.json" --markdown "docs/tokenizer-$1.md" >/dev/null
}

iteration() {  # name config run_dir [--section.key=value ...]
  local name=$1 config=$2 run=$3 tok=data/tokenizers/$1 layer
  shift 3
  $SL train encoder --config "$config" "$@"
  if [ ! -d "$tok" ]; then
    layer=$($PY -m speechlm.eval.encoder_layers --model "$run/model" --k "$K" \
      --json "docs/$name-layers.json" --best)
    echo "$name: best layer by PNMI on valid: $layer (docs/$name-layers.json)" >&2
    $SL train tokenizer --features "$run/model" --layer "$layer" --k "$K" --out "$tok"
  fi
  evaluate "$name" "$tok"
}

vocoder() {  # name tokenizer
  local feats="" out="outputs/vocoder-$1-s$VOC_STEPS" report="docs/resynth-$1-s$VOC_STEPS"
  [ -f "$report.json" ] && return
  [ "$1" = mfcc-k100 ] && [ "$VOC_STEPS" = 4000 ] && return  # the bundled unit-vocoder
  if [ "$1" != mfcc-k100 ] && [ -f data/vocoder/mfcc-k100/train.json ]; then
    feats="--data.feats_from=data/vocoder/mfcc-k100"
  fi
  [ "$1" = mfcc-k100 ] || feats="$feats --data.cache=data/vocoder/$1"
  $SL train vocoder --config configs/vocoder/cpu.toml --data.tokenizer="$2" $feats \
    --train.max_steps="$VOC_STEPS" --train.sample_interval=0 --train.out="$out"
  $SL eval resynth --vocoder "$out/model" --methods world-f0 --per-voice 10 \
    --json "$report.json" --markdown "$report.md" >/dev/null
}

evaluate mfcc-k100 mfcc-k100
# the encoder's own input, quantized: how much of a gain is the log-mel front end alone
[ -d "data/tokenizers/logmel-k$K" ] || $SL train tokenizer --features logmel --k "$K" \
  --out "data/tokenizers/logmel-k$K" >/dev/null
evaluate "logmel-k$K" "data/tokenizers/logmel-k$K"
names=(encmel1-k$K)
iteration "encmel1-k$K" configs/encoder/cpu-mel.toml outputs/encoder-cpu-mel
if [ "$ITER2" = 1 ]; then
  names+=(encmel2-k$K)
  iteration "encmel2-k$K" configs/encoder/cpu-mel-iter2.toml outputs/encoder-cpu-mel-iter2 \
    --data.tokenizer="data/tokenizers/encmel1-k$K" --data.units_dir="data/units/encmel1-k$K-frames"
fi
if [ "$VOCODERS" = 1 ]; then
  vocoder mfcc-k100 mfcc-k100
  for n in "${names[@]}"; do vocoder "$n" "data/tokenizers/$n"; done
fi
$PY -m speechlm.eval.encoder_units mfcc-k100 "logmel-k$K" "${names[@]}" --steps "$VOC_STEPS" \
  --json docs/encoder-units.json --markdown docs/encoder-units.md
