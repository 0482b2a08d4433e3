#!/usr/bin/env bash
# The tokenizer's test-time input options (speechlm/tokenizer.py: with_band_limit, with_warp),
# judged on seen and unheard voices. Each step is skipped when its report exists.
#   1. the band limit chosen on the valid split (seen voices): `eval tokenizer --manifest valid`
#      over TOKS at each cut-off of CUTS and the full band (200 utterances, no UED)
#      -> VALID (docs/tokenizer-band-valid).{md,json}
#   2. per tokenizer of TOKS: the full band against each cut-off of EVAL_CUTS, on 200 test
#      utterances (seen voices, held-out sentences) and 200 heldout ones (voices never trained
#      on), paired frame by frame, with UED -> docs/tokenizer-band-NAME.{md,json}
#   3. (WARP_TOK) vocal-tract length normalisation: --warp none against --warp auto, the same
#      utterances -> docs/tokenizer-warp-NAME.{md,json}
#   4. (FIT_ENCODER) k-means K = 100 refitted on the encoder's posteriors of input low-passed at
#      FIT_CUT (`train tokenizer --band-limit`: the tokenizer then applies it by default and its
#      unit space names it) -> FIT_OUT, judged beside FIT_BASE (the full-band fit) read at the same
#      cut-off -> docs/tokenizer-band-fitted-NAME.{md,json}
# NAME is the tokenizer's directory name (phone-k100: the bundled one). ~45 min
# on 2 cores: bash scripts/eval_tokenizer_input.sh. Another tokenizer alone, e.g.
#   TOKS=outputs/tokenizers/phone-cmn-long2-k100 VALID=docs/tokenizer-band-valid-phone-cmn-long2-k100 \
#     WARP_TOK= FIT_ENCODER= bash scripts/eval_tokenizer_input.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
TOKS=${TOKS:-outputs/tokenizers/phone-cmn-long-k100 phone-k100}
CUTS=${CUTS:-4800 5600 6400 7200}
VALID=${VALID:-docs/tokenizer-band-valid}
EVAL_CUTS=${EVAL_CUTS:-6400 7200}
WARP_TOK=${WARP_TOK:-outputs/tokenizers/phone-cmn-long-k100}
FIT_ENCODER=${FIT_ENCODER:-outputs/encoder-phone-cmn-long/model}
FIT_CUT=${FIT_CUT:-6400}
FIT_OUT=${FIT_OUT:-outputs/tokenizers/phone-cmn-long-b$FIT_CUT-k100}
FIT_BASE=${FIT_BASE:-outputs/tokenizers/phone-cmn-long-k100}
export OMP_WAIT_POLICY=PASSIVE

report() {  # STEM EVAL_TOKENIZER_ARGS...
  local stem=$1
  shift
  [ -f "$stem.json" ] || $SL eval tokenizer --corpus "$CORPUS" --max-utterances 200 --quiet \
    "$@" --json "$stem.json" --markdown "$stem.md"
}
name() { basename "$1"; }
flags() {  # FLAG VALUES...: FLAG V for each value
  local f=$1 v
  shift
  for v in "$@"; do printf '%s\n%s\n' "$f" "$v"; done
}

# shellcheck disable=SC2046  # word lists
report "$VALID" --manifest valid --no-ued $(flags --tokenizer $TOKS) \
  --band-limit none $(flags --band-limit $CUTS)
for tok in $TOKS; do
  # shellcheck disable=SC2046
  report "docs/tokenizer-band-$(name "$tok")" --manifest test --manifest heldout \
    --tokenizer "$tok" --band-limit none $(flags --band-limit $EVAL_CUTS)
done
[ -z "$WARP_TOK" ] || report "docs/tokenizer-warp-$(name "$WARP_TOK")" --manifest test \
  --manifest heldout --tokenizer "$WARP_TOK" --warp none --warp auto
[ -z "$FIT_ENCODER" ] || {
  [ -f "$FIT_OUT/config.json" ] || $SL train tokenizer --corpus "$CORPUS" --manifest train \
    --features "$FIT_ENCODER" --layer posteriors --k 100 --max-utterances 2000 \
    --max-frames 300000 --band-limit "$FIT_CUT" --out "$FIT_OUT" --force
  report "docs/tokenizer-band-fitted-$(name "$FIT_OUT")" --manifest test --manifest heldout \
    --tokenizer "$FIT_BASE" --tokenizer "$FIT_OUT" --band-limit "$FIT_CUT"
}
