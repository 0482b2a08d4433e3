#!/usr/bin/env bash
# The Whisper phone head trained longer (issues 14, 15 and 16). The bundled head learned its
# phones in 2,000 steps (20 minutes on 2 cores), and its units still misspell a sixth of the
# phones of voices no model heard; every stage after it (the LM's probes, the vocoder's words)
# reads those spellings. Here the bundled head trains 3,000 more steps on the same data and
# losses from a warm restart of its learning rate, and is read as the bundle reads its head
# (greedy CTC, blank penalty 1). Its units are the same phone classes, so the bundled LM and
# vocoder read them through speechlm adopt-units (configs only). make wphone-head-more
# (~35 min of training, ~5 min of spelling, then ~45 min of judging):
# 1. train: configs/encoder/whisper-phone-more-cpu.toml -> outputs/encoder-whisper-phone-more;
#    its CTC tokenizer with the bundle's blank penalty, the head in float16 as the bundle ships
#    it -> outputs/tokenizers/whisper-phone-more;
# 2. valid: its phone error rate on 100 valid utterances (held-out sentences of the training
#    voices) against the bundled -> docs/wphone-more-valid; the steps below run only when it
#    spells valid better (outputs/wphone-head-more/chosen; exit 0 with a line otherwise, after
#    the pairing with its control below, a diagnostic, for a head that has one);
# 3. tokenizer: against the bundled on test, the held-out engines and Allison's real prompts
#    -> docs/wphone-more-tokenizer, and on the probe items -> docs/wphone-more-spelling;
# 4. lm: the bundled LM reading its units (adopt-units) on the held-out voices' probes, against
#    the bundled LM on its own units, scored in the same step -> docs/wphone-more{,-base}-lm,
#    docs/wphone-more-lm-compare;
# 5. vocoder: the bundled vocoder reading its units, on Allison's 217 real prompts and the
#    held-out engines (source F0), against the bundle on its own units (docs/wphone-blank-
#    {allison,heldout}: the bundled vocoder's weights on the units the bundle reads now; made by
#    make wphone-blank) -> docs/wphone-more-{allison,heldout}{,-compare};
# 6. continue (not in the default STEPS): the default model with the new tokenizer on Allison's
#    continuations against docs/wphone-blank-continue -> docs/wphone-more-continue{,-compare}.
# HEAD=forced (make wphone-head-forced) runs the same steps for configs/encoder/
# whisper-phone-forced-cpu.toml, the same 3,000 steps with the 15 training voices that have no
# engine labels added (labelled first by `speechlm corpus align` -> data/align-v2; their crops
# train CTC only), into outputs/{encoder-,tokenizers/}whisper-phone-forced,
# outputs/wphone-head-forced and docs/wphone-forced-*; with the longer-trained head's tokenizer
# at hand (HEAD=more's), its spelling is also paired with that one, its control (the same steps
# on the old data) -> docs/wphone-forced-control.
# HEAD=balanced (make wphone-head-balanced) does the same for configs/encoder/
# whisper-phone-balanced-cpu.toml: HEAD=forced's recipe with the crops drawn by voice
# (data.voice_balance = 1: each of the 27 base voices alike, so more than half come from the 15
# without engine labels), its control HEAD=forced's head (docs/wphone-balanced-control).
# Every step is skipped when its output exists; training resumes. Env: PROBES (data/probes-v2);
# STEPS, which of steps 3-6 to run (default "tokenizer lm vocoder"; "none": only SHIP); THREADS
# (the head's torch threads, 2). SHIP=1 copies the new head over the bundled tokenizer and
# adopts the bundled LM and vocoder onto it in place (configs only), the LM's unit rate measured
# again (below); the judging steps are then refused (exit 2): they judge against the bundled
# head.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, compare, wphone_spelling,
#                                   wphone_lm, units_resynth, stage_links, allison_continue,
#                                   bundled_reading
HEAD=${HEAD:-more}
case $HEAD in more) CONTROL=;; forced) CONTROL=more;; balanced) CONTROL=forced;;
  *) echo "wphone-head-more: HEAD must be more, forced or balanced, got '$HEAD'" >&2; exit 2;; esac
N=wphone-$HEAD  # the reports' prefix: docs/$N-*
S=outputs/wphone-head-$HEAD
ENC=outputs/encoder-whisper-phone-$HEAD
TOK=outputs/tokenizers/whisper-phone-$HEAD
CONTROL=${CONTROL:+outputs/tokenizers/whisper-phone-$CONTROL}  # the same steps without the change
R=data/real
P=speechlm/pretrained
PROBES=${PROBES:-data/probes-v2}
STEPS=" ${STEPS:-tokenizer lm vocoder} "
[ -f "$CORPUS/train.tsv" ] || { echo "wphone-head-more: $CORPUS/train.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
[ -f "$R/allison/allison.tsv" ] || SL=$SL bash scripts/build_real_voice.sh
BUNDLED_HEAD=14a8ee2f  # the hash of the bundled head these steps judge against
if [ "$STEPS" != " none " ] && ! grep -qs "$BUNDLED_HEAD\"" "$P/whisper-phone/config.json"; then
  echo "wphone-head-more: the bundled tokenizer's head is no longer $BUNDLED_HEAD (SHIP=1 ran); the steps judge against that head: run them from a checkout before the switch" >&2
  exit 2
fi
mkdir -p "$S" docs
# the bundle's reports the new head is paired with (make wphone-blank), checked before any work
for set in allison heldout continue; do
  [[ $set == continue && $STEPS != *" continue "* || $set != continue && $STEPS != *" vocoder "* ]] ||
    [ -f "docs/wphone-blank-$set.json" ] || { echo "wphone-head-more: docs/wphone-blank-$set.json is missing: the bundle's report the new head is paired with (git checkout -- docs, or make wphone-blank from a checkout before its switch)" >&2; exit 2; }
done

# 1. the head, and its tokenizer read as the bundle's
if [ ! -f "$TOK/config.json" ]; then
  mkdir -p "$(dirname "$ENC")"
  if [ "$HEAD" != more ] && [ ! -f data/align-v2/align.tsv ]; then
    $SL corpus align --quiet --corpus "$CORPUS" --manifest train --out data/align-v2
  fi
  $SL train encoder --config "configs/encoder/whisper-phone-$HEAD-cpu.toml" --data.corpus="$CORPUS" \
    --train.out="$ENC" --train.threads="${THREADS:-2}" > "$ENC.log" 2>&1
  $SL train tokenizer --quiet --features "$ENC/model" --layer ctc --out "$S/ctc" --force > /dev/null
  "$PY" - "$S/ctc" "$TOK" <<'PY'
import sys

from speechlm.tokenizer import Tokenizer

penalty = Tokenizer.load("whisper-phone").encoder.blank_penalty
tok = Tokenizer.load(sys.argv[1]).with_reading(blank_penalty=penalty)
print(tok.save(sys.argv[2], half=True), tok.unit_space)
PY
fi

# 2. valid: does it spell the training voices' held-out sentences better?
report "docs/$N-valid" tokenizer --quiet --corpus "$CORPUS" --tokenizer whisper-phone \
  --tokenizer "$TOK" --manifest valid --max-utterances 100 --no-ued
"$PY" - "docs/$N-valid.json" "$S/chosen" <<'PY'
import json
import sys

from speechlm.io import write_text_atomic

base, new = json.load(open(sys.argv[1]))["reports"]
print(f"valid phone error rate: bundled {base['unit_phone_error_rate']}, "
      f"new {new['unit_phone_error_rate']}")
better = new["unit_phone_error_rate"] < base["unit_phone_error_rate"]
write_text_atomic(sys.argv[2], (new if better else base)["tokenizer"] + "\n")
PY
# its spelling against its control (forced: HEAD=more's head, the old data; balanced:
# HEAD=forced's, the draws by utterance), where it exists: made whether or not it passed valid,
# a diagnostic of what the change did (nothing is chosen on it)
control_report() {
  if [[ $STEPS == *" tokenizer "* ]] && [ -n "$CONTROL" ] && [ -f "$CONTROL/config.json" ]; then
    report "docs/$N-control" tokenizer --quiet --corpus "$CORPUS" --tokenizer "$CONTROL" \
      --tokenizer "$TOK" --manifest valid --manifest test --manifest heldout \
      --manifest data/real/allison/allison.tsv --manifest "$PROBES/lexical/items.tsv" \
      --max-utterances 100 --no-ued
  fi
}
if [ "$(cat "$S/chosen")" != "$TOK" ]; then
  control_report
  echo "wphone-head-more: the new head ($HEAD) spells valid no better: nothing to judge or ship" >&2
  exit 0
fi

# 3. its units: sentences, then the probe items
if [[ $STEPS == *" tokenizer "* ]]; then
  wphone_spelling "$N" "$TOK" "$PROBES"
  control_report
fi

# 4. the bundled LM on its units
if [[ $STEPS == *" lm "* || $STEPS == *" continue "* ]]; then
  [ -f "$S/lm/config.json" ] || $SL adopt-units whisper-phone-lm --tokenizer "$TOK" --out "$S/lm"
fi
if [[ $STEPS == *" lm "* ]]; then
  wphone_lm "$N" "$TOK" "$S/lm" "$N-base-lm" "$PROBES"
fi

# 5. the bundled vocoder on its units
if [[ $STEPS == *" vocoder "* || $STEPS == *" continue "* ]]; then
  [ -f "$S/vocoder/config.json" ] || $SL adopt-units whisper-phone-vocoder --tokenizer "$TOK" \
    --out "$S/vocoder"
fi
if [[ $STEPS == *" vocoder "* ]]; then
  units_resynth "docs/$N" "$S/vocoder" "$TOK"
  for set in allison heldout; do
    compare resynth "docs/wphone-blank-$set" "docs/$N-$set" "docs/$N-$set-compare"
  done
fi

# 6. the default model with the new tokenizer
if [[ $STEPS == *" continue "* ]]; then
  stage_links "$S/model" "$TOK" "$S/lm" "$S/vocoder"
  allison_continue "docs/$N-continue" "$S/model"
  compare continue docs/wphone-blank-continue "docs/$N-continue" "docs/$N-continue-compare"
fi
# SHIP=1: the new head becomes the bundled tokenizer's, and the bundled LM and vocoder take its
# units (adopt-units in place: configs only); the LM's units_per_second is measured again on
# the new head's reading against the head it trained on (the bundled head read without the
# penalty, kept first in $S/trained-bp0): scripts/wphone_unit_rate.sh with TRAINED
if [ "${SHIP:-0}" = 1 ]; then
  [ -f "$TOK/config.json" ] || { echo "wphone-head-more: $TOK is missing: run the steps first" >&2; exit 2; }
  OLD=$S/trained-bp0
  if [ ! -f "$OLD/config.json" ]; then
    grep -qs "$BUNDLED_HEAD\"" "$P/whisper-phone/config.json" || { echo "wphone-head-more: the bundled head is no longer $BUNDLED_HEAD and $OLD, the head the LM trained on, was not kept: ship from a checkout before the switch" >&2; exit 2; }
    bundled_reading "$OLD"
  fi
  "$PY" - "$TOK" "$P/whisper-phone" <<'PY'
import sys

from speechlm.tokenizer import Tokenizer

print(Tokenizer.load(sys.argv[1]).save(sys.argv[2], half=True))
PY
  for st in whisper-phone-lm whisper-phone-vocoder; do
    $SL adopt-units "$st" --tokenizer whisper-phone --out "$P/$st"
  done
  TRAINED=$OLD bash scripts/wphone_unit_rate.sh
fi
echo "docs/$N-*.{json,md}"
