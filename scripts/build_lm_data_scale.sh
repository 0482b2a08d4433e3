#!/usr/bin/env bash
# Issue 16's data axis: the unit LM on the full world corpus (HOURS=106: 103.8 h of train,
# ~10M deduplicated units) against the same recipes on the 12.5 h sample, at equal steps,
# batch and context for s (the same compute). Two runs, one core each, side by side:
#   s  4 x 128 (0.8M), 2,000 steps: the bundled phone-lm's recipe (configs/lm/phone-cpu.toml)
#   m  6 x 256 (4.7M), 1,400 steps: twice the 12.5 h run's 700 (the table gives each compute)
# Both are judged on what the 12.5 h runs were judged on (docs/lm-scaling-*.md): the sample's
# test units (held-out sentences; data/units/v2-phone-k100-dedup) and the probes of
# data/probes-v2 (held-out engines), so the rows compare. Writes docs/lm-data-scale.{json,md}
# and each run's report docs/lm-data-scale-<run>.{json,md}. The units are those of TOK (default: the
# first phone-unit default, outputs/baselines/phone-v1, whose units these reports were made on). About 25 min to tokenize the corpus
# (2 cores) and ~45 min of training; every step resumes if killed.
#   HOURS=106 OUT=data/corpus-106 bash scripts/build_corpus.sh   (first; ~75 min on 2 idle cores)
#   bash scripts/build_lm_data_scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-106}
UNITS=${UNITS:-data/units/106-phone-k100}
OUT=${OUT:-outputs/lm-data-scale}
SMALL=${SMALL:-outputs/lm-scaling}  # the 12.5 h runs of scripts/build_lm_scaling.sh
export OMP_WAIT_POLICY=PASSIVE
. scripts/lib/phone_v1.sh  # V1, need_v1
TOK=${TOK:-$V1/tokenizer}
need_v1 "$TOK"
mkdir -p "$OUT" docs
DATA=(--data.corpus="$CORPUS" --data.tokenizer="$TOK" --data.units_dir="$UNITS-dedup"
  --data.frames_dir="$UNITS-frames")

# tokenize once (frame-rate shards, then the deduplicated shard derived from them)
.venv/bin/python - "${DATA[@]}" <<'PY'
import sys

from speechlm.train.lm import LMTask, load_config

LMTask(load_config("configs/lm/phone-cpu.toml", sys.argv[1:])).prepare(progress=True)
PY

# run NAME LAYERS WIDTH HEADS STEPS LR EVAL_INTERVAL
run() {
  $SL train lm --config configs/lm/phone-cpu.toml "${DATA[@]}" --model.n_layer="$2" \
    --model.n_embd="$3" --model.n_head="$4" --train.max_steps="$5" --train.lr="$6" \
    --train.warmup_steps=$(( $5 / 10 )) --train.eval_interval="$7" --train.ckpt_interval="$7" \
    --train.out="$OUT/$1" > "$OUT/$1.log" 2>&1
}
run s 4 128 4 2000 3e-3 200 & run m 6 256 4 1400 2e-3 140 & wait

report() {  # RUN_DIR NAME
  [ -f "docs/lm-data-scale-$2.json" ] || $SL eval lm --model "$1/model" --corpus data/corpus-v2 \
    --units-dir data/units/v2-phone-k100-dedup --probes data/probes-v2 --quiet \
    --json "docs/lm-data-scale-$2.json" --markdown "docs/lm-data-scale-$2.md"
}
for r in s m; do report "$OUT/$r" "$r-106h"; done
for r in s m; do if [ -d "$SMALL/$r/model" ]; then report "$SMALL/$r" "$r-12h"; fi; done
RUNS=("$OUT"/s "$OUT"/m)  # the 12.5 h runs join the table where scripts/build_lm_scaling.sh left them
for r in s m; do if [ -d "$SMALL/$r/model" ]; then RUNS+=("$SMALL/$r"); fi; done
$SL eval scaling "${RUNS[@]}" --json docs/lm-data-scale.json --markdown docs/lm-data-scale.md
