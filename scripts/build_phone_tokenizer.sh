#!/usr/bin/env bash
# Phone-supervised units (docs/tokenizer-phone.md), end to end on CPU:
#
#   1. train the phone encoder: configs/encoder/phone-cpu.toml (frame phone cross-entropy + CTC
#      on the world corpus's alignments, speed-perturbed and augmented crops; ~1 h on 2 cores)
#   2. fit k-means over its phone posteriors at K = 50, 100, 200, 500 (a seeded subset of train)
#      -> outputs/tokenizers/phone-k<K>, each self-contained (encoder + centroids)
#   3. one table: speechlm eval tokenizer for mfcc-k100 and each K on seen voices (test) and
#      unseen voices (heldout: whole engines never trained on), UED included
#      -> docs/tokenizer-phone.md (+ .json)
#
# Every step resumes or is skipped when its output exists: rerun after a kill. Needs the world
# corpus (make corpus-world, or HOURS=12 bash scripts/build_corpus.sh for a sample).
# Env: CORPUS (data/corpus-v2), RUN (outputs/encoder-phone-cpu), KS ("50 100 200 500"),
# SMOOTHING (unit-change cost, see 'speechlm train tokenizer --smoothing'), EVAL_UTTS (200),
# BUNDLE (1: also write the bundled speechlm/pretrained/phone-k100, see step 4).
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
RUN=${RUN:-outputs/encoder-phone-cpu}
KS=${KS:-50 100 200 500}
SMOOTHING=${SMOOTHING:-0}
EVAL_UTTS=${EVAL_UTTS:-200}
export OMP_WAIT_POLICY=PASSIVE

$SL train encoder --config configs/encoder/phone-cpu.toml --data.corpus="$CORPUS" \
  --train.out="$RUN"

toks=(--tokenizer mfcc-k100)
for K in $KS; do
  out=outputs/tokenizers/phone-k$K
  [ -f "$out/config.json" ] || $SL train tokenizer --corpus "$CORPUS" --manifest train \
    --features "$RUN/model" --layer posteriors --k "$K" --max-utterances 2000 \
    --max-frames 300000 --smoothing "$SMOOTHING" --out "$out" --force
  toks+=(--tokenizer "$out")
done

$SL eval tokenizer --corpus "$CORPUS" --manifest test --manifest heldout "${toks[@]}" \
  --max-utterances "$EVAL_UTTS" --json docs/tokenizer-phone.json \
  --markdown docs/tokenizer-phone.md

# 4. with BUNDLE=1: ship K = 100 as the bundled (not default) tokenizer speechlm/pretrained/phone-k100,
#    its encoder stored in float16 (~10 MB), so vocoder and LM runs can start from it
if [ "${BUNDLE:-0}" = 1 ]; then
  .venv/bin/python - <<'PY'
from speechlm.tokenizer import Tokenizer
tok = Tokenizer.load("outputs/tokenizers/phone-k100")
print(tok.save("speechlm/pretrained/phone-k100", half=True), tok.unit_space)
PY
fi
