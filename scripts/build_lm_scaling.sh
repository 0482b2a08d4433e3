#!/usr/bin/env bash
# The LM scaling sweep and the interleaving comparison of issue 16, on the phone-k100 units of the
# world corpus: three sizes of the units-only recipe (configs/lm/phone-cpu.toml) given about the
# same wall time on one core each (~28 min on this 2-core machine, two runs at a time), and the
# middle size twice more with the interleaved text + speech recipe (configs/lm/phone-mix-cpu.toml)
# at exactly its units-only budget (same steps, batch and context: the same tokens and compute).
# Writes docs/lm-scaling.{json,md}, docs/figures/lm-scaling.png and each run's probe report
# docs/lm-scaling-<run>.{json,md}. The units are those of TOK (default: the first phone-unit default,
# outputs/baselines/phone-v1, whose units these reports were made on). About 1.5 hours in all; every run resumes if killed.
#   bash scripts/build_lm_scaling.sh        (needs data/corpus-v2: HOURS=12 bash scripts/build_corpus.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
OUT=${OUT:-outputs/lm-scaling}
UNITS=configs/lm/phone-cpu.toml
MIX=configs/lm/phone-mix-cpu.toml
export OMP_WAIT_POLICY=PASSIVE
. scripts/lib/phone_v1.sh  # V1, need_v1
TOK=${TOK:-$V1/tokenizer}
need_v1 "$TOK"
mkdir -p "$OUT" docs/figures

# tokenize once (frame-rate units, the deduplicated shard and the mix) before runs share them
.venv/bin/python - "$MIX" "$CORPUS" "$TOK" <<'PY'
import sys

from speechlm.train.lm import LMTask, load_config

overrides = [f"--data.corpus={sys.argv[2]}", f"--data.tokenizer={sys.argv[3]}"]
LMTask(load_config(sys.argv[1], overrides)).prepare(progress=True)
PY

# run NAME RECIPE LAYERS WIDTH HEADS STEPS LR EVAL_INTERVAL [OVERRIDE...]
run() {
  $SL train lm --config "$2" --data.corpus="$CORPUS" --model.n_layer="$3" --model.n_embd="$4" \
    --model.n_head="$5" --train.max_steps="$6" --train.lr="$7" --train.warmup_steps=$(( $6 / 10 )) \
    --train.eval_interval="$8" --train.ckpt_interval="$8" --train.out="$OUT/$1" --data.tokenizer="$TOK" "${@:9}" \
    > "$OUT/$1.log" 2>&1
}
run m "$UNITS" 6 256 4 700 2e-3 70 & run m-mix "$MIX" 6 256 4 700 2e-3 70 & wait
run s "$UNITS" 4 128 4 2000 3e-3 200 & run l "$UNITS" 8 384 6 300 1.5e-3 30 & wait
# the interleaved recipe with four differently cut interleaved copies of every utterance with
# word times and half the text (39 % of the mix interleaved instead of 11 %), same budget
run m-mix4 "$MIX" 6 256 4 700 2e-3 70 --data.mix_dir=data/units/v2-phone-k100-mix4 \
  --data.interleave_copies=4 --data.text_ratio=0.5

$SL eval scaling "$OUT"/s "$OUT"/m "$OUT"/l "$OUT"/m-mix "$OUT"/m-mix4 \
  --json docs/lm-scaling.json --markdown docs/lm-scaling.md --figure docs/figures/lm-scaling.png
[ -f data/probes-v2/lexical/pairs.tsv ] || \
  $SL eval build-probes --out data/probes-v2 --corpus "$CORPUS" --voices pico_us,piper_joe,mbrola_us3
for r in s m l m-mix m-mix4; do
  $SL eval lm --model "$OUT/$r/model" --corpus "$CORPUS" --probes data/probes-v2 \
    --frames-dir data/units/v2-phone-k100-frames \
    --json "docs/lm-scaling-$r.json" --markdown "docs/lm-scaling-$r.md" --quiet
done
