#!/usr/bin/env bash
# A CTC blank penalty (issues 14, 15 and 16). The bundled tokenizer (speechlm/pretrained/
# whisper-phone) reads its phone head's CTC output greedily: a frame is a phone only where that
# phone's logit beats the blank's, and most of its spelling errors on sentences are deleted or
# substituted phones. Lowering the blank's logit (WhisperPhoneEncoder's blank_penalty; the same
# head, no new weights) emits the phones the blank outweighs by less. The penalty is chosen on
# valid (held-out sentences of the training voices), then judged once on held-out voices.
# make wphone-blank (~75 min):
# 1. choose: the bundled tokenizer read with blank penalties 0.5, 1, 2 (Tokenizer.with_reading)
#    -> outputs/tokenizers/whisper-phone-bpP; their phone error rate on 100 valid utterances
#    against the bundled -> docs/wphone-blank-valid; the lowest unit phone error rate is the
#    candidate (outputs/wphone-blank/chosen; the bundled itself when none is lower);
# 2. tokenizer: the candidate against the bundled on test, the held-out engines and Allison's
#    real prompts (PNMI, ABX, UED, phone error rates) -> docs/wphone-blank-tokenizer, and on the
#    probe items (the held-out voices' isolated words and sentences) -> docs/wphone-blank-spelling;
# 3. lm: the bundled LM reading the candidate's units (speechlm adopt-units) on the probes,
#    against the bundled LM on its own units (docs/wphone-words-base-lm, made here when absent)
#    -> docs/wphone-blank-lm{,-compare};
# 4. vocoder: the bundled vocoder reading the candidate's units, on Allison's 217 real prompts
#    and the held-out engines, against the bundled (docs/wphone-words-base-{allison,heldout})
#    -> docs/wphone-blank-{allison,heldout}{,-compare};
# 5. continue: the default model with the candidate tokenizer (LM and vocoder adopted) on
#    Allison's continuations, against the default (docs/wphone-words-base-continue)
#    -> docs/wphone-blank-continue{,-compare}.
# Every step is skipped when its output exists. Env: PROBES (data/probes-v2); STEPS, which of
# steps 2-5 to run (default: "tokenizer lm vocoder continue"; "none": only SHIP); step 1 always
# runs first. SHIP=1 makes the bundled tokenizer read with the chosen penalty and
# the bundled LM and vocoder take its units (speechlm adopt-units in place: configs only, the
# weights unchanged); the judging steps are then refused (exit 2): they judge against the bundle
# without a penalty, so rerun them from a checkout before the switch.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, compare, wphone_spelling,
#                                   wphone_lm, units_resynth, stage_links, allison_continue,
#                                   bundled_reading
S=outputs/wphone-blank
R=data/real
PROBES=${PROBES:-data/probes-v2}
STEPS=" ${STEPS:-tokenizer lm vocoder continue} "
PENALTIES="0.5 1 2"
[ -f "$CORPUS/train.tsv" ] || { echo "wphone-blank: $CORPUS/train.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
[ -f "$R/allison/allison.tsv" ] || SL=$SL bash scripts/build_real_voice.sh
mkdir -p "$S" docs
P=speechlm/pretrained
if [ "$STEPS" != " none " ] && grep -qs '"blank_penalty"' "$P/whisper-phone/config.json"; then
  echo "wphone-blank: the bundled tokenizer already reads with a blank penalty (SHIP=1 ran); the steps judge against the bundle without one: run them from a checkout before the switch" >&2
  exit 2
fi
# 1. the penalties, chosen on valid
args=()
for p in $PENALTIES; do
  t=outputs/tokenizers/whisper-phone-bp$p
  [ -f "$t/config.json" ] || bundled_reading "$t" "$p"
  args+=(--tokenizer "$t")
done
report docs/wphone-blank-valid tokenizer --quiet --corpus "$CORPUS" --tokenizer whisper-phone \
  "${args[@]}" --manifest valid --max-utterances 100 --no-ued
"$PY" - docs/wphone-blank-valid.json "$S/chosen" <<'PY'
import json
import sys

from speechlm.io import write_text_atomic

rows = json.load(open(sys.argv[1]))["reports"]
best = min(rows, key=lambda r: r["unit_phone_error_rate"])  # the bundled (first) wins ties
write_text_atomic(sys.argv[2], best["tokenizer"] + "\n")
print(f"chosen on valid: {best['tokenizer']} ({best['unit_phone_error_rate']})")
PY
TOK=$(cat "$S/chosen")
if [ "$TOK" = whisper-phone ]; then
  echo "wphone-blank: no penalty spells valid better than none: nothing to judge or ship" >&2
  exit 0
fi

# 2. the candidate's units: sentences, then the probe items
if [[ $STEPS == *" tokenizer "* ]]; then wphone_spelling wphone-blank "$TOK" "$PROBES"; fi

# 3. the bundled LM on the candidate's units
if [[ $STEPS == *" lm "* || $STEPS == *" continue "* ]]; then
  [ -f "$S/lm/config.json" ] || $SL adopt-units whisper-phone-lm --tokenizer "$TOK" --out "$S/lm"
fi
if [[ $STEPS == *" lm "* ]]; then
  wphone_lm wphone-blank "$TOK" "$S/lm" wphone-words-base-lm "$PROBES"
fi

# 4. the bundled vocoder on the candidate's units
if [[ $STEPS == *" vocoder "* || $STEPS == *" continue "* ]]; then
  [ -f "$S/vocoder/config.json" ] || $SL adopt-units whisper-phone-vocoder --tokenizer "$TOK" \
    --out "$S/vocoder"
fi
if [[ $STEPS == *" vocoder "* ]]; then
  units_resynth docs/wphone-words-base whisper-phone-vocoder whisper-phone
  units_resynth docs/wphone-blank "$S/vocoder" "$TOK"
  for set in allison heldout; do
    compare resynth "docs/wphone-words-base-$set" "docs/wphone-blank-$set" \
      "docs/wphone-blank-$set-compare"
  done
fi

# 5. the default model with the candidate tokenizer
if [[ $STEPS == *" continue "* ]]; then
  stage_links "$S/model" "$TOK" "$S/lm" "$S/vocoder"
  allison_continue docs/wphone-words-base-continue default
  allison_continue docs/wphone-blank-continue "$S/model"
  compare continue docs/wphone-words-base-continue docs/wphone-blank-continue \
    docs/wphone-blank-continue-compare
fi
# SHIP=1: the bundled tokenizer reads with the chosen penalty (its config only) and the bundled
# LM and vocoder take its units (adopt-units in place: configs only)
if [ "${SHIP:-0}" = 1 ]; then
  "$PY" - "$P/whisper-phone" "$TOK" <<'PY'
import sys

from speechlm.tokenizer import Tokenizer

tok = Tokenizer.load("whisper-phone")
penalty = Tokenizer.load(sys.argv[2]).encoder.blank_penalty
if tok.encoder.blank_penalty != penalty:
    print(tok.with_reading(blank_penalty=penalty).save(sys.argv[1]))
PY
  for st in whisper-phone-lm whisper-phone-vocoder; do
    $SL adopt-units "$st" --tokenizer whisper-phone --out "$P/$st"
  done
fi
echo "docs/wphone-blank-*.{json,md}"
