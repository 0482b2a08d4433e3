#!/usr/bin/env bash
# The phone oracle (issue 16 / issue 14): is it the units or the LM that keeps the probes at
# chance? One probe set spoken by four voices whose engines report phone alignments (MBROLA
# us3, held out; MBROLA us1, festival's slt HTS and flite's awb, heard in training), scored by
#   - PHONE_LM (default: phone-lm as first bundled, outputs/baselines/phone-v1/lm; phone-k100 units of
#     the 12.5 h sample): seen against unseen voices;
#   - the same recipe trained on the reference phones of the same corpus
#     (configs/lm/oracle-phones-cpu.toml): a tokenizer that spelled every word as its phones;
#     also with random phone errors on the probe items (--phone-noise): the phone error rate a
#     tokenizer must stay under.
# Writes docs/lm-phone-lm-aligned-probes.{json,md} and docs/lm-oracle-phones.{json,md}.
# About 25 min on 2 cores (17 of them training on one core); every step resumes or skips.
#   HOURS=12 bash scripts/build_corpus.sh   (first, if data/corpus-v2 is missing; ~10 min)
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
PROBES=${PROBES:-data/probes-aligned}
RUN=${RUN:-outputs/lm-oracle-phones}
export OMP_WAIT_POLICY=PASSIVE
. scripts/lib/phone_v1.sh  # V1, need_v1
PHONE_LM=${PHONE_LM:-$V1/lm}
need_v1 "$PHONE_LM"
mkdir -p docs outputs

[ -f "$PROBES/syntactic/pairs.tsv" ] || $SL eval build-probes --out "$PROBES" --corpus "$CORPUS" \
  --voices mbrola_us3,mbrola_us1,fest_slt_hts,flite_awb
EVAL=
if [ ! -f docs/lm-phone-lm-aligned-probes.json ]; then  # beside the training, on the other core
  $SL eval lm --model "$PHONE_LM" --corpus "$CORPUS" --units-dir data/units/v2-phone-k100-dedup \
    --probes "$PROBES" --quiet --json docs/lm-phone-lm-aligned-probes.json \
    --markdown docs/lm-phone-lm-aligned-probes.md & EVAL=$!
fi
mkdir -p "$(dirname "$RUN")"
$SL train lm --config configs/lm/oracle-phones-cpu.toml --data.corpus="$CORPUS" \
  --train.out="$RUN" > "$RUN.log" 2>&1
[ -z "$EVAL" ] || wait "$EVAL"
$SL eval lm --model "$RUN/model" --corpus "$CORPUS" --units-dir data/units/oracle-phones \
  --probes "$PROBES" --phone-noise 0.02,0.05,0.1,0.2,0.3 --quiet --json docs/lm-oracle-phones.json \
  --markdown docs/lm-oracle-phones.md
