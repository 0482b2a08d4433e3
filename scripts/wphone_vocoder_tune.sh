#!/usr/bin/env bash
# The bundled vocoder fine-tuned on the units it reads now (issue 15). speechlm/pretrained/
# whisper-phone-vocoder was trained on the Whisper phone head's CTC units read without a blank
# penalty; the bundled tokenizer reads them with a penalty of 1 since 2026-12-07 (more phones
# emitted) and the vocoder only adopted them. Does training on them help it speak them?
# make wphone-vocoder-tune (~70 min on 2 cores; steps 4-5 ~30 min more):
# 1. train: the bundled vocoder fine-tuned 1,000 steps on its 40 utterances per identity read
#    with the penalty (configs/vocoder/whisper-phone-tune-cpu.toml) -> outputs/vocoder-wphone-tune;
#    beside it, the control: the same recipe from the same weights on the same utterances read
#    without the penalty (outputs/tokenizers/whisper-phone-bp0, the unit space it was trained on;
#    the bundle adopted back onto it, outputs/wphone-vocoder-tune/base0) -> outputs/vocoder-wphone-tune0;
#    the two runs side by side, one thread each;
# 2. export: each run's last weights into a copy of its starting vocoder (its settings, waveform
#    stage and intonation model kept; int8 and float16 as bundled) -> outputs/wphone-vocoder-tune/
#    {tune,tune0};
# 3. judge: resynthesis with the source F0 on the held-out engines and Allison's 217 real prompts
#    (units_resynth): the fine-tune on the penalised units against the bundle on them
#    (docs/wphone-blank-{heldout,allison}, made by make wphone-blank before the switch), the
#    control against the bundle on the units without the penalty (docs/wphone-words-base-*)
#    -> docs/wphone-vocoder-tune{,0}-{heldout,allison}{,-compare}. The fine-tune's gain over
#    the control's is what matching the units adds to more training;
# 4. drawn: the path continuations take (no source F0: the intonation model draws it), on 80 of
#    Allison's prompts (seeded), the fine-tune against the bundle -> docs/wphone-vocoder-tune-
#    {base-drawn,drawn,drawn-compare};
# 5. continue: the default model speaking through the fine-tune, on Allison's continuations,
#    against the default (docs/wphone-blank-continue, the bundle as it is now)
#    -> docs/wphone-vocoder-tune-continue{,-compare}.
# Steps 4 and 5 are for a decision to ship, after step 3 (not in the default STEPS; not run on
# 2026-12-07: the fine-tune lost no fewer words than the bundle in step 3).
# Every step is skipped when its output exists (a killed training run resumes). Env: STEPS
# (default "train judge"; "drawn continue" adds steps 4-5; "none": only SHIP); SHIP=1 copies the fine-tune over the bundled
# vocoder (its weights change: one more version of a 9 MB file in git); the judging steps are
# then refused (exit 2): they judge against the bundle before the fine-tune.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, compare, units_resynth,
#                                   wphone_model, allison_continue, bundled_reading
S=outputs/wphone-vocoder-tune
STEPS=" ${STEPS:-train judge} "
CONFIG=configs/vocoder/whisper-phone-tune-cpu.toml
INT8="speaker.,pre.,post.,duration.blocks."
[ -f "$CORPUS/train.tsv" ] || { echo "wphone-vocoder-tune: $CORPUS/train.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
[ -f data/vocoder/v2-wphone-ctc/train.json ] || { echo "wphone-vocoder-tune: data/vocoder/v2-wphone-ctc is missing: make whisper-phone builds it" >&2; exit 2; }
[ -f data/real/allison/allison.tsv ] || SL=$SL bash scripts/build_real_voice.sh
mkdir -p "$S" docs logs
P=speechlm/pretrained
if [[ $STEPS == *" judge "* || $STEPS == *" drawn "* || $STEPS == *" continue "* ]] && grep -qs '"fine_tune"' "$P/whisper-phone-vocoder/config.json"; then
  echo "wphone-vocoder-tune: the bundled vocoder is the fine-tune already (SHIP=1 ran); the judging steps compare against the bundle before it: run them from a checkout before the switch" >&2
  exit 2
fi
BP0=outputs/tokenizers/whisper-phone-bp0
if [[ $STEPS == *" train "* ]]; then
  [ -f "$BP0/config.json" ] || bundled_reading "$BP0"
  [ -f "$S/base0/config.json" ] || $SL adopt-units whisper-phone-vocoder --tokenizer "$BP0" \
    --out "$S/base0"
  pids=()
  for run in tune tune0; do
    [ -f "$S/$run/config.json" ] && continue
    args=(--config "$CONFIG" --data.corpus="$CORPUS" --train.out="outputs/vocoder-wphone-$run")
    [ "$run" = tune0 ] && args+=(--model.init="$S/base0" --data.tokenizer="$BP0" \
      --data.cache=data/vocoder/v2-wphone-ctc --data.feats_from=)
    OMP_NUM_THREADS=1 $SL train vocoder "${args[@]}" > "logs/vocoder-wphone-$run.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for run in tune tune0; do
    base=whisper-phone-vocoder
    [ "$run" = tune0 ] && base=$S/base0
    [ -f "$S/$run/config.json" ] || "$PY" - "outputs/vocoder-wphone-$run" "$S/$run" "$base" \
      "$INT8" <<'PY'
import json
import sys

from safetensors.torch import load_file

from speechlm.vocoder import Vocoder

run, out, base, int8 = sys.argv[1:]
v = Vocoder.load(base)  # its settings, waveform stage and intonation model
ft = Vocoder.load(f"{run}/model")
if ft.cfg.unit_space != v.cfg.unit_space:
    sys.exit(f"{run}: units {ft.cfg.unit_space}, its start {v.cfg.unit_space}")
state = load_file(f"{run}/state.safetensors")  # the last weights
v.model.load_state_dict({k[6:]: t for k, t in state.items()
                         if k.startswith("model.") and not k.startswith("model.critic.")})
last = [json.loads(x) for x in open(f"{run}/log.jsonl") if '"valid"' in x][-1]
v.training["fine_tune"] = {
    "steps": last["step"], "recipe": ft.training.get("recipe"),
    "tokenizer": ft.training.get("tokenizer"), "init": ft.training.get("init"),
    "valid_loss": {k: round(x, 5) for k, x in last["valid"].items()}}
v.save(out, half=True, int8=tuple(int8.split(",")))
print(out, json.dumps(v.training["fine_tune"]))
PY
  done
fi
if [[ $STEPS == *" judge "* ]]; then
  for st in words-base blank; do
    for set in allison heldout; do
      [ -f "docs/wphone-$st-$set.json" ] || { echo "wphone-vocoder-tune: docs/wphone-$st-$set.json is missing: make wphone-blank made it before the switch" >&2; exit 2; }
    done
  done
  units_resynth docs/wphone-vocoder-tune "$S/tune" whisper-phone
  units_resynth docs/wphone-vocoder-tune0 "$S/tune0" "$BP0"
  for set in allison heldout; do
    compare resynth "docs/wphone-blank-$set" "docs/wphone-vocoder-tune-$set" \
      "docs/wphone-vocoder-tune-$set-compare"
    compare resynth "docs/wphone-words-base-$set" "docs/wphone-vocoder-tune0-$set" \
      "docs/wphone-vocoder-tune0-$set-compare"
  done
fi
if [[ $STEPS == *" drawn "* ]]; then
  for run in base-drawn:whisper-phone-vocoder drawn:$S/tune; do
    report "docs/wphone-vocoder-tune-${run%%:*}" resynth --quiet --vocoder "${run#*:}" \
      --wav-dir data/real/allison --per-voice 80 --methods hn --asr whisper \
      --reference-voices data/real/others
  done
  compare resynth docs/wphone-vocoder-tune-base-drawn docs/wphone-vocoder-tune-drawn \
    docs/wphone-vocoder-tune-drawn-compare
fi
if [[ $STEPS == *" continue "* ]]; then
  [ -f docs/wphone-blank-continue.json ] || { echo "wphone-vocoder-tune: docs/wphone-blank-continue.json is missing: make wphone-blank made it" >&2; exit 2; }
  wphone_model "$S/model" "$S/tune"
  allison_continue docs/wphone-vocoder-tune-continue "$S/model"
  compare continue docs/wphone-blank-continue docs/wphone-vocoder-tune-continue \
    docs/wphone-vocoder-tune-continue-compare
fi
# SHIP=1: the fine-tune becomes the bundled vocoder (weights and training record)
if [ "${SHIP:-0}" = 1 ]; then
  [ -f "$S/tune/config.json" ] || { echo "wphone-vocoder-tune: $S/tune is missing: run the train step first" >&2; exit 2; }
  rm -rf "$P/whisper-phone-vocoder.new"
  cp -r "$S/tune" "$P/whisper-phone-vocoder.new"
  rm -rf "$P/whisper-phone-vocoder"
  mv "$P/whisper-phone-vocoder.new" "$P/whisper-phone-vocoder"
fi
echo "docs/wphone-vocoder-tune*.{json,md}"
