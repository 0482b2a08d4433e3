#!/usr/bin/env bash
# The default units (phone-k100, band-limited since 2026-12-05), their vocoder (phone-vocoder) and
# their LM (phone-lm), rebuilt from nothing but this repository (`make default-units`, ~3 h on 2
# idle cores; `UNITS_ONLY=1`: the units alone, ~1.8 h):
#   0. the world corpus sample the runs train on (12.5 h, ~6 min; resumable, hash-ordered);
#   1. phone-cmn: the first phone default's encoder (phone-v1, restored from git history)
#      trained 3,600 more steps with per-input log-mel mean normalisation (the training of
#      `make phone-cmn`, without its unit report);
#   2. phone-cmn-long: that encoder trained 3,600 steps more of the same recipe (the training of
#      `make phone-cmn-long`);
#   3. k-means K = 100 over its posteriors of input low-passed at 6400 Hz (the cut-off chosen on
#      valid: docs/tokenizer-band-valid*), so the tokenizer applies the cut-off by default
#      -> outputs/tokenizers/phone-cmn-long-b6400-k100, bundled with its encoder in float16 as
#      speechlm/pretrained/phone-k100-b6400 (STAGED): committed, the units outlive the session
#      in git, and the switch after them fits in the next one;
#   4. the switch from phone-v1 (PREV=outputs/baselines/phone-v1): vocoder and LM trained on
#      those units, the three bundled as phone-k100 / phone-vocoder / phone-lm, judged against
#      phone-v1 -> docs/switch-*-b6400r* (scripts/switch_default_units.sh, RUN=-b6400r; a rebuild
#      whose units differ from those reports' needs another RUN: the switch refuses to keep them);
#      STAGED is then removed (the bundle phone-k100 holds the same bytes).
# Steps 1-3 are skipped while STAGED is bundled (FROM_SCRATCH=1 rebuilds them anyway). Each
# step skips what exists and resumes a killed run. The unit space name hashes the k-means
# centroids: the script prints the rebuilt one beside the bundled one (JUDGED), so equal names
# mean the rebuild reproduced the bundled units (two rebuilds on one recipe did not: 425c6ac5,
# then 8b1f9cc1, the one bundled).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-data/corpus-v2}
HOURS=${HOURS:-12.5}
TOK=outputs/tokenizers/phone-cmn-long-b6400-k100
STAGED=speechlm/pretrained/phone-k100-b6400
JUDGED=phone-encoder-phone-cmn-long-posteriors-k100-b6400-8b1f9cc1  # docs/switch-*-b6400r*
export OMP_WAIT_POLICY=PASSIVE
SL=.venv/bin/speechlm
PY=.venv/bin/python

nice -n 10 $SL corpus synth --preset world --out "$CORPUS" --jobs 2 --hours "$HOURS"

if [ ! -f "$STAGED/config.json" ] || [ "${FROM_SCRATCH:-0}" = 1 ]; then
  NAME=cmn TRAIN_ONLY=1 CORPUS="$CORPUS" EXTRA="--model.extractor_mode=logmel_cmn" \
    bash scripts/build_phone_encoder_more.sh
  NAME=cmn-long TRAIN_ONLY=1 CORPUS="$CORPUS" \
    INIT=outputs/encoder-phone-cmn/model EXTRA="--model.extractor_mode=logmel_cmn" \
    bash scripts/build_phone_encoder_more.sh
  [ -f "$TOK/config.json" ] || $SL train tokenizer --corpus "$CORPUS" --manifest train \
    --features outputs/encoder-phone-cmn-long/model --layer posteriors --k 100 \
    --max-utterances 2000 --max-frames 300000 --band-limit 6400 --out "$TOK" --force
  $PY - "$TOK" "$STAGED" <<'PYCODE'
import sys
from speechlm.tokenizer import Tokenizer
Tokenizer.load(sys.argv[1]).save(sys.argv[2], half=True)
PYCODE
fi
space() { $PY -c "import json,sys; print(json.load(open(sys.argv[1] + '/config.json'))['unit_space'])" "$1"; }
echo "default-units: $STAGED speaks $(space "$STAGED"); the bundled units: $JUDGED"
[ "${UNITS_ONLY:-0}" = 0 ] || exit 0

bash scripts/restore_baselines.sh > /dev/null
PREV=outputs/baselines/phone-v1 TOK="$STAGED" RUN=${RUN:--b6400r} CORPUS="$CORPUS" \
  bash scripts/switch_default_units.sh
[ "$(space speechlm/pretrained/phone-k100)" != "$(space "$STAGED")" ] || rm -rf "$STAGED"
