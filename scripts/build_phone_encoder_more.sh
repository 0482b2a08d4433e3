#!/usr/bin/env bash
# Issue 14's lever for issue 16 (see "The phone oracle" in the README): does more training of
# the phone encoder make units an LM can spell words with? Starts from the bundled encoder
# (speechlm/pretrained/phone-k100/encoder, 2,400 steps) and trains STEPS more steps of the same
# recipe (configs/encoder/phone-cpu.toml, model.init; a fresh warm-up and cosine schedule at
# half the peak rate), then:
#   1. k-means K = 100 over its posteriors (as phone-k100 was made) -> outputs/tokenizers/phone-more-k100
#   2. speechlm eval tokenizer: it against phone-k100, seen (test) and held-out voices
#      -> docs/tokenizer-phone-more.{md,json}
#   3. the bundled LM's recipe (configs/lm/phone-cpu.toml) on its units of the 12.5 h sample,
#      scored on the aligned probe set of scripts/build_lm_phone_oracle.sh
#      -> docs/lm-phone-more-aligned-probes.{md,json}
# ~75 min on 2 idle cores (encoder ~36 min at 1.65 steps/s, LM ~18 min); every step resumes or
# is skipped when its output exists. Nothing bundled changes: the default units switch only
# together with a vocoder and an LM trained on them.
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
RUN=${RUN:-outputs/encoder-phone-cont}
STEPS=${STEPS:-3600}
PROBES=${PROBES:-data/probes-aligned}
TOK=outputs/tokenizers/phone-more-k100
export OMP_WAIT_POLICY=PASSIVE

$SL train encoder --config configs/encoder/phone-cpu.toml --data.corpus="$CORPUS" \
  --model.init=speechlm/pretrained/phone-k100/encoder --train.max_steps="$STEPS" \
  --train.warmup_steps=100 --train.lr=5e-4 --train.eval_interval=400 --train.out="$RUN"

[ -f "$TOK/config.json" ] || $SL train tokenizer --corpus "$CORPUS" --manifest train \
  --features "$RUN/model" --layer posteriors --k 100 --max-utterances 2000 \
  --max-frames 300000 --out "$TOK" --force

[ -f docs/tokenizer-phone-more.json ] || $SL eval tokenizer --corpus "$CORPUS" --manifest test \
  --manifest heldout --tokenizer phone-k100 --tokenizer "$TOK" --max-utterances 200 \
  --json docs/tokenizer-phone-more.json --markdown docs/tokenizer-phone-more.md

[ -f "$PROBES/syntactic/pairs.tsv" ] || $SL eval build-probes --out "$PROBES" --corpus "$CORPUS" \
  --voices mbrola_us3,mbrola_us1,fest_slt_hts,flite_awb
$SL train lm --config configs/lm/phone-cpu.toml --data.corpus="$CORPUS" --data.tokenizer="$TOK" \
  --data.units_dir=data/units/v2-phone-more-k100-dedup \
  --data.frames_dir=data/units/v2-phone-more-k100-frames --train.out=outputs/lm-phone-more \
  > outputs/lm-phone-more.log 2>&1
$SL eval lm --model outputs/lm-phone-more/model --corpus "$CORPUS" --probes "$PROBES" --quiet \
  --json docs/lm-phone-more-aligned-probes.json --markdown docs/lm-phone-more-aligned-probes.md
