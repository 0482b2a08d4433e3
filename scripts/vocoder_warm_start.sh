#!/usr/bin/env bash
# A vocoder warm-started from the bundled phone-vocoder, judged against it on the same utterances
# (issue 15's WER):
#   bash scripts/vocoder_warm_start.sh NAME CONFIG
# trains CONFIG (a recipe with model.init = "phone-vocoder": configs/vocoder/phone-cpu-more.toml,
# the same units 3,000 steps more; configs/vocoder/phone-k500-cpu.toml, K = 500 units of the same
# encoder; ~60 min each on one core, resumes if killed), exports its *last* weights (the run's
# model/ keeps those of the best total validation loss, and there the F0 head's overfitting
# outweighs the log-mel's gains: the last weights are what the full budget gives) with the bundled settings
# (timbre 0.5, contrast 1.2, voiced-noise cut 1000 Hz; float16, the speaker encoder in int8),
# judges both on the world corpus's held-out engines (voices no model here heard; eval resynth
# --data heldout --per-voice 2) and on known identities' held-out sentences (--data test
# --per-voice 1), source and drawn F0, and writes the paired differences (eval compare-resynth).
# Writes docs/vocoder-warm-bundled-{heldout,test}.* (once for every NAME),
# docs/vocoder-warm-NAME-{heldout,test}.* and docs/vocoder-warm-NAME-compare-{heldout,test}.*.
# Needs the world corpus (make corpus-world). Env: CORPUS (data/corpus-v2); K (fit the recipe's
# tokenizer outputs/tokenizers/phone-kK on the bundled phone encoder's posteriors first, as
# scripts/build_phone_tokenizer.sh does); PHASE (all; train: train and export only; judge: judge
# the bundled vocoder only, which needs no training and can run beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 NAME CONFIG" >&2; exit 2; }
NAME=$1
CONFIG=$2
CORPUS=${CORPUS:-data/corpus-v2}
PHASE=${PHASE:-all}
E=outputs/vocoder-warm-eval
. scripts/lib/heldout_reports.sh  # SL, PY, judge_vocoder, export_last_vocoder
mkdir -p "$E" docs
judge() {  # name vocoder
  judge_vocoder "docs/vocoder-warm-$1" "$2"
}
if [ "$PHASE" != train ]; then judge bundled phone-vocoder; fi
if [ "$PHASE" = judge ]; then exit 0; fi
if [ -n "${K:-}" ] && [ ! -f "outputs/tokenizers/phone-k$K/config.json" ]; then
  $SL train tokenizer --corpus "$CORPUS" --manifest train \
    --features speechlm/pretrained/phone-k100/encoder --layer posteriors --k "$K" \
    --max-utterances 2000 --max-frames 300000 --smoothing 0 --out "outputs/tokenizers/phone-k$K"
fi
$SL train vocoder --config "$CONFIG" --data.corpus="$CORPUS"
export_last_vocoder "$("$PY" -c 'import sys; from speechlm.train.vocoder import load_config; print(load_config(sys.argv[1])["train"]["out"])' "$CONFIG")" "$E/$NAME"
if [ "$PHASE" = train ]; then exit 0; fi
judge "$NAME" "$E/$NAME"
for split in heldout test; do
  $SL eval compare-resynth "docs/vocoder-warm-bundled-$split.json" \
    "docs/vocoder-warm-$NAME-$split.json" --json "docs/vocoder-warm-$NAME-compare-$split.json" \
    --markdown "docs/vocoder-warm-$NAME-compare-$split.md"
done
