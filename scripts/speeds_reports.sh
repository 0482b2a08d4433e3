#!/usr/bin/env bash
# Judge the tokenizer's speed ensemble (`--speeds`, Tokenizer.with_speeds: the phone encoder's
# frame log-posteriors averaged over the input read at several speeds; nothing retrained, the
# unit space unchanged) on the bundled default units:
#   1. choose the speeds on known voices: 150 utterances of the world corpus's valid split
#      (held-out sentences of the training identities), each set of SETS paired against none
#      -> docs/tokenizer-speeds-valid.*;
#   2. CHOSEN (set after reading step 1; empty: stop there) once on 200 seen-voice test and
#      200 held-out-engine utterances, against none -> docs/tokenizer-speeds-phone-k100.*;
#   3. the bundled pipeline's resynthesis (the source-F0 path, what `resynth` runs) of 2
#      utterances per held-out voice with CHOSEN, paired against the bundle's own report on
#      the same utterances (docs/vocoder-source-f0-1-heldout, made by
#      scripts/source_f0_reports.sh) -> docs/vocoder-speeds-{heldout,compare-heldout}.*.
#   4. when `make phone-band2` has been run (BAND2, its tokenizer, exists): the ensemble on
#      phone-band2's units against one pass, then k-means refitted on the ensemble
#      (train tokenizer --speeds) against phone-band2's centroids, both read with it
#      -> docs/tokenizer-speeds-phone-band2.*, docs/tokenizer-speeds-fitted-phone-band2.*.
# ~5 + 20 + 10 (+ 20) min on 2 cores. Needs the world corpus sample; a rerun skips finished
# reports.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh
SETS=${SETS:-none 0.9,1,1.1 0.85,1,1.15 0.8,1,1.25 0.85,0.92,1,1.08,1.15}
CHOSEN=${CHOSEN:-}
TOK=${TOK:-phone-k100}
BASE=${BASE:-docs/vocoder-source-f0-1-heldout}
speeds=()
for s in $SETS; do speeds+=(--speeds "$s"); done
report docs/tokenizer-speeds-valid tokenizer --quiet --corpus "$CORPUS" --manifest valid \
  --tokenizer "$TOK" "${speeds[@]}" --max-utterances 150 --no-ued
[ -n "$CHOSEN" ] || exit 0
report "docs/tokenizer-speeds-$TOK" tokenizer --quiet --corpus "$CORPUS" --manifest test \
  --manifest heldout --tokenizer "$TOK" --speeds none --speeds "$CHOSEN" --max-utterances 200
resynth_heldout docs/vocoder-speeds-heldout phone-vocoder hn-f0 --speeds "$CHOSEN"
compare resynth "$BASE" docs/vocoder-speeds-heldout docs/vocoder-speeds-compare-heldout
BAND2=${BAND2:-outputs/tokenizers/phone-band2-k100}
[ -f "$BAND2/config.json" ] || exit 0
report docs/tokenizer-speeds-phone-band2 tokenizer --quiet --corpus "$CORPUS" --manifest test \
  --manifest heldout --tokenizer "$BAND2" --speeds none --speeds "$CHOSEN" \
  --max-utterances 200 --no-ued
FITTED=${BAND2%-k100}-e3-k100
[ -f "$FITTED/config.json" ] || $SL train tokenizer --corpus "$CORPUS" --manifest train \
  --features outputs/encoder-phone-band2/model --layer posteriors --k 100 \
  --max-utterances 2000 --max-frames 300000 --band-limit 6400 --speeds "$CHOSEN" \
  --out "$FITTED" --force
report docs/tokenizer-speeds-fitted-phone-band2 tokenizer --quiet --corpus "$CORPUS" \
  --manifest test --manifest heldout --tokenizer "$BAND2" --tokenizer "$FITTED" \
  --speeds "$CHOSEN" --max-utterances 200 --no-ued
