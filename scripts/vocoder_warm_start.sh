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
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
PHASE=${PHASE:-all}
E=outputs/vocoder-warm-eval
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$E" docs
judge() {  # name vocoder
  for split in heldout test; do
    if [ "$split" = heldout ]; then pv=2; else pv=1; fi
    [ -f "docs/vocoder-warm-$1-$split.json" ] || $SL eval resynth --quiet --vocoder "$2" \
      --corpus "$CORPUS" --data "$split" --per-voice "$pv" --methods hn-f0,hn --asr whisper \
      --json "docs/vocoder-warm-$1-$split.json" --markdown "docs/vocoder-warm-$1-$split.md"
  done
}
if [ "$PHASE" != train ]; then judge bundled phone-vocoder; fi
if [ "$PHASE" = judge ]; then exit 0; fi
if [ -n "${K:-}" ] && [ ! -f "outputs/tokenizers/phone-k$K/config.json" ]; then
  $SL train tokenizer --corpus "$CORPUS" --manifest train \
    --features speechlm/pretrained/phone-k100/encoder --layer posteriors --k "$K" \
    --max-utterances 2000 --max-frames 300000 --smoothing 0 --out "outputs/tokenizers/phone-k$K"
fi
$SL train vocoder --config "$CONFIG" --data.corpus="$CORPUS"
.venv/bin/python - "$CONFIG" "$E/$NAME" <<'PY'
import sys
from speechlm.train.vocoder import load_config
from speechlm.vocoder import Vocoder

import json
from safetensors.torch import load_file

config, out = sys.argv[1:]
run = load_config(config)["train"]["out"]
v = Vocoder.load(f"{run}/model")  # its architecture, training record and waveform stage
state = load_file(f"{run}/state.safetensors")  # the last weights
v.model.load_state_dict({k[6:]: t for k, t in state.items() if k.startswith("model.")})
last = [json.loads(x) for x in open(f"{run}/log.jsonl") if '"valid"' in x][-1]
v.training.update(steps=last["step"], valid_loss={k: round(x, 5) for k, x in last["valid"].items()},
                  weights="last")
v.set_timbre_match(0.5).set_mel_contrast(1.2).set_voiced_noise_cut(1000)
v.save(out, half=True, int8=("speaker.",))
print(v.training["steps"], v.training["valid_loss"])
PY
if [ "$PHASE" = train ]; then exit 0; fi
judge "$NAME" "$E/$NAME"
for split in heldout test; do
  $SL eval compare-resynth "docs/vocoder-warm-bundled-$split.json" \
    "docs/vocoder-warm-$NAME-$split.json" --json "docs/vocoder-warm-$NAME-compare-$split.json" \
    --markdown "docs/vocoder-warm-$NAME-compare-$split.md"
done
