#!/usr/bin/env bash
# Switch the bundled default units, vocoder and LM together (the pipeline refuses mixed unit
# spaces):
#   TOK=outputs/tokenizers/phone-cmn-k100 bash scripts/switch_default_units.sh
#
# 1. keep the bundles it replaces in outputs/switch/prev-{phone-k100,phone-vocoder,phone-lm}
#    (once: a rerun after a kill finds them), and make sure the vocoder cache of the old units
#    (data/vocoder/v2-phone-k100, what the bundled vocoder trained on) exists;
# 2. bundle TOK as speechlm/pretrained/phone-k100 (its encoder in float16);
# 3. vocoder: configs/vocoder/phone-cpu-more.toml warm-started from the old vocoder; the cache of
#    the new units is the old one relabelled (data.feats_from: no new WORLD/mel analysis), and
#    each new unit's embeddings start from the old unit it shares the most frames with
#    (speechlm.train.vocoder.frame_transfer). VOC_STEPS (3000, ~60 min on one core) ->
#    outputs/vocoder-switch, exported (last weights, the bundled settings) to
#    speechlm/pretrained/phone-vocoder;
# 4. LM: configs/lm/phone-cpu.toml on the new units of the 12.5 h sample (beside the vocoder:
#    both recipes use one thread) -> outputs/lm-switch, exported in float16 to
#    speechlm/pretrained/phone-lm;
# 5. judge new against old on the same utterances: eval resynth (held-out engines, known
#    identities) + compare-resynth -> docs/switch-vocoder-*; eval lm on PROBES (data/probes-v2) ->
#    docs/switch-lm-{prev,new}.*; one `speechlm continue` through the new default pipeline.
#    The old bundle is judged before step 2 (both commands tokenize with the tokenizer a model
#    names, and step 2 gives the name to the new one).
#
# Every step resumes or is skipped when its output exists. Needs the world corpus (make
# corpus-world). VOC_STEPS=4 LM_STEPS=4 CORPUS=<a --small world corpus> in a scratch clone is
# the smoke test. After it: update the README lines that name the old unit space (the script
# prints them; the tests read the bundle's), and commit the three bundles together.
# PHASE=judge redoes only step 5. PREV (default speechlm/pretrained) is where the three bundles
# it replaces come from: PREV=outputs/baselines/phone-v1 (scripts/restore_baselines.sh) switches
# from the first phone default whatever the bundle holds by then. RUN (default empty) suffixes
# the new side's names (outputs/{vocoder,lm}-switch$RUN, docs/switch-*-new$RUN*,
# docs/switch-vocoder-compare$RUN-*) so a second candidate keeps the first one's reports.
# ONLY=vocoder or ONLY=lm (default: both) trains, exports and judges one of the two: with TOK the
# bundled tokenizer itself (step 2 then changes nothing), that rebuilds the bundled vocoder or LM
# as the switch made it (make vocoder, make lm).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-data/corpus-v2}
TOK=${TOK:-}
VOC_STEPS=${VOC_STEPS:-3000}
LM_STEPS=${LM_STEPS:-}  # empty: the recipe's (2000)
PROBES=${PROBES:-data/probes-v2}  # built if missing, as scripts/build_default_lm.sh does
PHASE=${PHASE:-all}
RUN=${RUN:-}
ONLY=${ONLY:-}
case "$ONLY" in ""|vocoder|lm) ;; *) echo "switch: ONLY must be vocoder or lm, got '$ONLY'" >&2; exit 2;; esac
VOC=1 LM=1
[ "$ONLY" != lm ] || VOC=0
[ "$ONLY" != vocoder ] || LM=0
S=outputs/switch
P=speechlm/pretrained
PREV=${PREV:-$P}
OLD_CACHE=data/vocoder/v2-phone-k100
. scripts/lib/heldout_reports.sh  # SL, PY, judge_vocoder, export_last_vocoder, export_lm_half,
#                                   heldout_probes
[ -n "$TOK" ] || { echo "switch: set TOK to the tokenizer to bundle (e.g. outputs/tokenizers/phone-cmn-k100)" >&2; exit 2; }
[ -f "$TOK/config.json" ] || { echo "switch: $TOK is not a tokenizer directory" >&2; exit 2; }
mkdir -p "$S" docs

judge_lm() {  # name LM
  [ -f "docs/switch-lm-$1.json" ] || $SL eval lm --model "$2" --corpus "$CORPUS" \
    --probes "$PROBES" --quiet --json "docs/switch-lm-$1.json" \
    --markdown "docs/switch-lm-$1.md"
}
space() { $PY -c "import json,sys; print(json.load(open(sys.argv[1] + '/config.json'))['unit_space'])" "$1"; }
# same_units SPACE REPORT...: each report that exists judged SPACE. A report left by another
# candidate (same RUN, other units) would otherwise be kept as if it judged this one.
same_units() {
  local want=$1 f got
  shift
  for f in "$@"; do
    [ -f "$f" ] || continue
    got=$($PY -c "import json,sys; print(json.load(open(sys.argv[1])).get('unit_space'))" "$f")
    [ "$got" = "$want" ] || { echo "switch: $f judged $got, not $want: move it away or set another RUN" >&2; exit 2; }
  done
}

if [ "$PHASE" != judge ]; then
  # 1. what it replaces, kept once
  for b in phone-k100:tokenizer phone-vocoder:vocoder phone-lm:lm; do
    src=$PREV/${b%%:*}
    [ "$PREV" = "$P" ] || src=$PREV/${b#*:}  # a --model directory: tokenizer/, vocoder/, lm/
    b=${b%%:*}
    [ -f "$src/config.json" ] || { echo "switch: $src holds no model" >&2; exit 2; }
    [ -d "$S/prev-$b" ] || { rm -rf "$S/prev-$b.tmp"; cp -rL "$src" "$S/prev-$b.tmp"; mv "$S/prev-$b.tmp" "$S/prev-$b"; }
  done
  OLD_SPACE=$(space "$S/prev-phone-vocoder")
  if [ "$VOC" = 1 ] && { [ ! -f "$OLD_CACHE/train.json" ] || [ ! -f "$OLD_CACHE/valid.json" ]; }; then
    # the analysis the old vocoder trained on (~7 min), with the old tokenizer
    $PY - "$CORPUS" "$OLD_CACHE" "$S/prev-phone-k100" <<'PYCODE'
import sys
from speechlm.train.vocoder import build_cache, load_config
corpus, cache, tok = sys.argv[1:]
cfg = load_config("configs/vocoder/phone-cpu.toml", [f"--data.corpus={corpus}",
                  f"--data.cache={cache}", f"--data.tokenizer={tok}"])
m = cfg["model"]
build_cache(cfg["data"], int(m.get("sp_dim", 60)), int(m.get("n_mels", 80)))
PYCODE
  fi
  [ "$VOC" = 0 ] || [ "$($PY -c "import json; print(json.load(open('$OLD_CACHE/train.json'))['unit_space'])")" = "$OLD_SPACE" ] || {
    echo "switch: $OLD_CACHE does not hold the old vocoder's units ($OLD_SPACE)" >&2; exit 2; }

  # the old bundle judged while its tokenizer still holds the name (eval resynth and eval lm
  # tokenize with the tokenizer a model names)
  [ "$LM" = 0 ] || heldout_probes "$PROBES"
  if [ "$(space "$P/phone-k100")" = "$OLD_SPACE" ]; then
    [ "$VOC" = 0 ] || judge_vocoder docs/switch-vocoder-prev "$S/prev-phone-vocoder"
    [ "$LM" = 0 ] || judge_lm prev "$S/prev-phone-lm"
  fi
  PREV_REPORTS=()
  [ "$VOC" = 0 ] || PREV_REPORTS+=(docs/switch-vocoder-prev-heldout.json docs/switch-vocoder-prev-test.json)
  [ "$LM" = 0 ] || PREV_REPORTS+=(docs/switch-lm-prev.json)
  for f in "${PREV_REPORTS[@]}"; do
    [ -f "$f" ] || { echo "switch: $f is missing and the old tokenizer no longer holds the name" >&2; exit 2; }
  done
  same_units "$OLD_SPACE" "${PREV_REPORTS[@]}"

  # 2. the new units
  NEW_SPACE=$(space "$TOK")
  if [ "$(space "$P/phone-k100")" != "$NEW_SPACE" ]; then
    $PY - "$TOK" "$P/phone-k100" <<'PYCODE'
import sys
from speechlm.tokenizer import Tokenizer
tok = Tokenizer.load(sys.argv[1])
print(tok.save(sys.argv[2], half=True), tok.unit_space)
PYCODE
  fi
  NEW_SPACE=$(space "$P/phone-k100")  # the bundle's (float16 encoder) name
  TAG=${NEW_SPACE##*-}
  NEW_CACHE=data/vocoder/v2-phone-k100-$TAG

  # 3 + 4, side by side (one thread each)
  VOC_PID=
  if [ "$VOC" = 1 ]; then
    $SL train vocoder --config configs/vocoder/phone-cpu-more.toml --data.corpus="$CORPUS" \
      --data.tokenizer=phone-k100 --data.cache="$NEW_CACHE" --data.feats_from="$OLD_CACHE" \
      --model.init="$S/prev-phone-vocoder" --train.max_steps="$VOC_STEPS" \
      --train.out="outputs/vocoder-switch$RUN" > "outputs/vocoder-switch$RUN.log" 2>&1 &
    VOC_PID=$!
    trap 'kill "$VOC_PID" 2>/dev/null || true' EXIT  # the LM failed: stop the vocoder too
  fi
  [ "$LM" = 0 ] || $SL train lm --config configs/lm/phone-cpu.toml --data.corpus="$CORPUS" \
    --data.tokenizer=phone-k100 --data.units_dir="data/units/v2-phone-k100-$TAG-dedup" \
    --data.frames_dir="data/units/v2-phone-k100-$TAG-frames" --train.out="outputs/lm-switch$RUN" \
    ${LM_STEPS:+--train.max_steps="$LM_STEPS"} \
    > "outputs/lm-switch$RUN.log" 2>&1
  if [ -n "$VOC_PID" ]; then
    wait "$VOC_PID"
    trap - EXIT
  fi

  # exports: the vocoder's last weights with the bundled settings, the LM's best in float16
  [ "$VOC" = 0 ] || export_last_vocoder "outputs/vocoder-switch$RUN" "$P/phone-vocoder"
  [ "$LM" = 0 ] || export_lm_half "outputs/lm-switch$RUN" "$P/phone-lm"
fi

# 5. judge the new bundle on the utterances the old one was judged on
same_units "$(space "$P/phone-k100")" "docs/switch-vocoder-new$RUN-heldout.json" \
  "docs/switch-vocoder-new$RUN-test.json" "docs/switch-lm-new$RUN.json"
if [ "$VOC" = 1 ]; then
  judge_vocoder "docs/switch-vocoder-new$RUN" phone-vocoder
  for split in heldout test; do
    $SL eval compare-resynth "docs/switch-vocoder-prev-$split.json" \
      "docs/switch-vocoder-new$RUN-$split.json" --json "docs/switch-vocoder-compare$RUN-$split.json" \
      --markdown "docs/switch-vocoder-compare$RUN-$split.md"
  done
fi
[ "$LM" = 0 ] || judge_lm "new$RUN" phone-lm
$SL continue samples/flite_slt_arctic_a0004.wav -o "$S/continue-new$RUN.wav" --seed 0 --force
echo "switch: the bundles now speak $(space "$P/phone-k100")"
echo "the old unit space is still named in: $(grep -rl "$(space "$S/prev-phone-k100")" tests README.md | tr '\n' ' ')"
