#!/usr/bin/env bash
# The scale test of issue 15's WER, on a lent GPU machine: configs/vocoder/phone-gpu.toml (the
# bundled phone-vocoder warm-started and trained with 4x larger batches of 1.5x longer crops, on
# its whole training cache) for as many steps as BUDGET_S seconds allow there. Run it through the
# device tool from the repo root, with the pack and wheels that scripts/gpu_vocoder_prepare.sh
# makes here (make gpu-vocoder-prepare) carried along:
#   run(command="bash scripts/gpu_vocoder_scale.sh", carry=[".whl", "data/vocoder/pack-gpu"],
#       timeout_s=560)
# 1. installs the carried wheels (soundfile: the device machine lacks it) into /tmp/site;
# 2. unpacks the cache (python -m speechlm.train.cache_pack; ~10 s);
# 3. measures the step rate over PROBE_STEPS steps ($RUN-probe) and sets
#    max_steps so that the run fills BUDGET_S (the cosine schedule then ends where the run
#    does); train.max_minutes stops it early (validation, export, checkpoint) if the rate was
#    overestimated. STEPS=N skips the probe;
# 4. writes to $OUT (at most 8 files, none over 16 MB): last.tar and best.tar (the last weights,
#    and those of the best validation loss, exported by export_last_vocoder (scripts/lib/
#    heldout_reports.sh) with the bundled inference settings, float16 with
#    the speaker encoder in int8: ~13 MB each), log.jsonl, probe.jsonl, run.toml, done.json.
# Back here, scripts/gpu_vocoder_judge.sh DIR judges them against the bundle, paired.
# Env: PACK, OUT, RUN (outputs/vocoder-gpu-scale), CACHE (where the pack unpacks), DEVICE (cuda),
# BUDGET_S (360), PROBE_STEPS (60), STEPS, EXTRA. DEVICE=cpu STEPS=20 OUT=/tmp/gpu-out is a dry
# run here (tests/test_gpu_vocoder.py runs one on a small pack).
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=${PACK:-data/vocoder/pack-gpu}
OUT=${OUT:-outputs/gpu-out}
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-360}
PROBE_STEPS=${PROBE_STEPS:-60}
STEPS=${STEPS:-}
CONFIG=configs/vocoder/phone-gpu.toml
RUN=${RUN:-outputs/vocoder-gpu-scale}
CACHE=${CACHE:-data/vocoder/gpu-phone-k100}
EXTRA=${EXTRA:-}  # more overrides for both runs (the dry run's small batches)
if [ -x .venv/bin/python ]; then PY=${PY:-.venv/bin/python}; else PY=${PY:-python3}; fi
. scripts/lib/heldout_reports.sh  # export_last_vocoder (PY as set here)
T0=$(date +%s)
[ -f "$PACK/pack.json" ] || { echo "gpu-vocoder: $PACK is not a cache pack: run scripts/gpu_vocoder_prepare.sh here and carry it" >&2; exit 2; }
if ! "$PY" -c "import soundfile" 2>/dev/null; then
  ls .whl/*.whl > /dev/null 2>&1 || { echo "gpu-vocoder: soundfile is missing and no .whl/ was carried" >&2; exit 2; }
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
"$PY" -m speechlm.train.cache_pack unpack "$PACK" "$CACHE"
train() {  # overrides...
  "$PY" -m speechlm.train.vocoder --config "$CONFIG" -q --data.cache="$CACHE" \
    --train.device="$DEVICE" $EXTRA "$@"
}
if [ -z "$STEPS" ]; then
  rm -rf "$RUN-probe"
  train --train.max_steps="$PROBE_STEPS" --train.eval_interval=100000 \
    --train.ckpt_interval=100000 --train.log_interval=1 --train.out="$RUN-probe"
  cp "$RUN-probe/log.jsonl" "$OUT/probe.jsonl"
  LEFT=$((BUDGET_S - ($(date +%s) - T0)))
  # the rate of the probe's last record (the first steps include CUDA's start-up: conservative),
  # 10 % of the time left kept for validation passes and the exports
  STEPS=$("$PY" -c "
import json, sys
rate = [r for r in map(json.loads, open(sys.argv[1])) if 'steps_per_s' in r][-1]['steps_per_s']
print(max(int(sys.argv[3]), int(rate * int(sys.argv[2]) * 0.9)))" "$RUN-probe/log.jsonl" "$LEFT" \
  "$PROBE_STEPS")
  echo "gpu-vocoder: $LEFT s left: $STEPS steps" >&2
fi
LEFT=$((BUDGET_S - ($(date +%s) - T0)))
MINUTES=$("$PY" -c "import sys; print(max(0.5, int(sys.argv[1]) / 60))" "$LEFT")
train --train.max_steps="$STEPS" --train.max_minutes="$MINUTES" --train.out="$RUN"
for name in best last; do
  rm -rf "$RUN/export-$name"
  export_last_vocoder "$RUN" "$RUN/export-$name" "$name" > /dev/null
  tar -cf "$OUT/$name.tar.tmp" -C "$RUN" "export-$name" --transform "s,^export-$name,$name,"
  mv "$OUT/$name.tar.tmp" "$OUT/$name.tar"
done
cp "$RUN/log.jsonl" "$RUN/run.toml" "$OUT/"
"$PY" - "$RUN" > "$OUT/done.json.tmp" <<'PY'
import json
import sys

run = sys.argv[1]
records = [json.loads(x) for x in open(f"{run}/log.jsonl")]
steps = {name: json.load(open(f"{run}/export-{name}/config.json"))["training"]["steps"]
         for name in ("best", "last")}
print(json.dumps({"steps": [r for r in records if "valid" in r][-1]["step"],
                  "valid_last": [r for r in records if "valid" in r][-1]["valid"],
                  "train_last": [r for r in records if "mel" in r][-1],
                  "best_steps": steps["best"], "last_steps": steps["last"]}, indent=1))
PY
mv "$OUT/done.json.tmp" "$OUT/done.json"
cat "$OUT/done.json"
echo "gpu-vocoder: done in $(($(date +%s) - T0)) s" >&2
