#!/usr/bin/env bash
# Issue 14's lever for issue 16 (see "The phone oracle" in docs/research/lm.md): does more training of
# the phone encoder make units an LM can spell words with? Starts from the first default's
# encoder (phone-v1's, 2,400 steps; restored from git history into outputs/baselines/phone-v1
# by scripts/restore_baselines.sh, so that a switch of the bundled phone-k100 does not move it)
# and trains STEPS more steps of the same recipe (configs/encoder/phone-cpu.toml, model.init; a fresh warm-up and cosine schedule at
# half the peak rate), then:
#   1. k-means K = 100 over its posteriors (as phone-k100 was made) -> outputs/tokenizers/phone-NAME-k100
#   2. speechlm eval tokenizer: it against BASE (default phone-v1's tokenizer; a run's, e.g.
#      outputs/tokenizers/phone-cmn-k100, pairs it with that run), seen (test) and
#      held-out voices -> docs/tokenizer-phone-NAME.{md,json}
#   3. (LM=1, the default) the bundled LM's recipe (configs/lm/phone-cpu.toml) on its units of
#      the 12.5 h sample, scored on the aligned probe set of scripts/build_lm_phone_oracle.sh
#      -> docs/lm-phone-NAME-aligned-probes.{md,json}
# NAME=more (default) is the plain recipe. Variants name themselves and add recipe overrides:
#   NAME=specaug EXTRA="--data.spec_freq_masks=2 --data.spec_freq_width=15 \
#     --data.spec_time_masks=2 --data.spec_time_width=10" LM=0 bash scripts/build_phone_encoder_more.sh
# (`make phone-specaug`): the same run with SpecAugment on the log-mel input.
#   NAME=cmn EXTRA="--model.extractor_mode=logmel_cmn" LM=0 bash scripts/build_phone_encoder_more.sh
# (`make phone-cmn`): the same run with each log-mel band less its mean over the input.
#   NAME=control LM=0 (`make phone-control`): the plain recipe again, phone-cmn's control on
# today's corpus draw. NAME=cmn-forced (`make phone-forced`: the force-aligned espeak-ng and
# RHVoice voices added), NAME=cmn-forced-ctc (`make phone-forced-ctc`: the same voices on CTC
# only) and NAME=cmn-adv (`make phone-adv`: a speaker adversary) build on phone-cmn and are
# judged against it with BASE=outputs/tokenizers/phone-cmn-k100.
# INIT (default: phone-v1's encoder) is where the run starts: NAME=cmn-long
# INIT=outputs/encoder-phone-cmn/model (`make phone-cmn-long`) trains phone-cmn's encoder
# STEPS more steps of its own recipe, the test of "more steps" on top of phone-cmn.
# NAME=cmn-long2 INIT=outputs/encoder-phone-cmn-long/model (`make phone-cmn-long2`) does it
# again from phone-cmn-long; NAME=cons (`make phone-cons`) is that run with a two-view
# posterior consistency loss (--model.consistency_weight=1), judged against phone-cmn-long2.
# NAME=band (`make phone-band`) is phone-cmn-long2's run on input low-passed at 6400 Hz
# (--data.band_limit=6400; TOKFLAGS="--band-limit 6400" fits its k-means the same way, so its
# tokenizer applies the cut-off by default), judged against the default units (phone-cmn-long
# read at 6400 Hz: outputs/tokenizers/phone-cmn-long-b6400-k100; EVALFLAGS="--band-limit 6400"
# applies to both rows; the band tokenizer's is its own).
# NAME=band2 INIT=outputs/encoder-phone-band/model (`make phone-band2`) trains phone-band's
# encoder STEPS more steps of its own recipe, judged against phone-band.
# TRAIN_ONLY=1 stops after the encoder. ~75-90 min on 2 idle cores (encoder 36-50 min at
# 1.65-1.2 steps/s, measured on different days; LM ~18 min); every step resumes or is skipped
# when its output exists. Nothing bundled changes: the default units switch only
# together with a vocoder and an LM trained on them.
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
NAME=${NAME:-more}
if [ "$NAME" = more ]; then RUN=${RUN:-outputs/encoder-phone-cont}; else RUN=${RUN:-outputs/encoder-phone-$NAME}; fi
STEPS=${STEPS:-3600}
EXTRA=${EXTRA:-}
TOKFLAGS=${TOKFLAGS:-}
EVALFLAGS=${EVALFLAGS:-}
LM=${LM:-1}
. scripts/lib/phone_v1.sh  # V1, need_v1: the first phone-unit default (its docs' "phone-k100")
BASE=${BASE:-$V1/tokenizer}
INIT=${INIT:-$V1/tokenizer/encoder}
need_v1 "$BASE" "$INIT"
PROBES=${PROBES:-data/probes-aligned}
TOK=outputs/tokenizers/phone-$NAME-k100
export OMP_WAIT_POLICY=PASSIVE

# shellcheck disable=SC2086  # EXTRA is a list of overrides
$SL train encoder --config configs/encoder/phone-cpu.toml --data.corpus="$CORPUS" \
  --model.init="$INIT" --train.max_steps="$STEPS" \
  --train.warmup_steps=100 --train.lr=5e-4 --train.eval_interval=400 --train.out="$RUN" $EXTRA
[ "${TRAIN_ONLY:-0}" = 0 ] || exit 0  # the encoder alone (scripts/build_default_units.sh)

# shellcheck disable=SC2086  # TOKFLAGS and EVALFLAGS are lists of options
[ -f "$TOK/config.json" ] || $SL train tokenizer --corpus "$CORPUS" --manifest train \
  --features "$RUN/model" --layer posteriors --k 100 --max-utterances 2000 \
  --max-frames 300000 --out "$TOK" --force $TOKFLAGS

# shellcheck disable=SC2086
[ -f "docs/tokenizer-phone-$NAME.json" ] || $SL eval tokenizer --corpus "$CORPUS" --manifest test \
  --manifest heldout --tokenizer "$BASE" --tokenizer "$TOK" --max-utterances 200 $EVALFLAGS \
  --json "docs/tokenizer-phone-$NAME.json" --markdown "docs/tokenizer-phone-$NAME.md"

[ "$LM" = 1 ] || exit 0
[ -f "$PROBES/syntactic/pairs.tsv" ] || $SL eval build-probes --out "$PROBES" --corpus "$CORPUS" \
  --voices mbrola_us3,mbrola_us1,fest_slt_hts,flite_awb
$SL train lm --config configs/lm/phone-cpu.toml --data.corpus="$CORPUS" --data.tokenizer="$TOK" \
  --data.units_dir="data/units/v2-phone-$NAME-k100-dedup" \
  --data.frames_dir="data/units/v2-phone-$NAME-k100-frames" --train.out="outputs/lm-phone-$NAME" \
  > "outputs/lm-phone-$NAME.log" 2>&1
$SL eval lm --model "outputs/lm-phone-$NAME/model" --corpus "$CORPUS" --probes "$PROBES" --quiet \
  --json "docs/lm-phone-$NAME-aligned-probes.json" --markdown "docs/lm-phone-$NAME-aligned-probes.md"
