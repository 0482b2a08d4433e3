#!/usr/bin/env bash
# The bundled default switched to the Whisper phone head's CTC units, with the LM and the vocoder
# make whisper-phone trained on them (issues 14-16; the pipeline refuses mixed unit spaces, so
# the three move together). make wphone-default (~1 h of judging on 2 cores, no training: it
# needs make whisper-phone's outputs):
# 1. the bundles: the CTC tokenizer with its head in float16 -> speechlm/pretrained/whisper-phone;
#    the LM's best weights in float16 -> speechlm/pretrained/whisper-phone-lm; the vocoder's last
#    weights with the bundled settings, float16 with the speaker encoder, the decoder's conv
#    blocks and the duration model's blocks in int8 (as whisper-vocoder was bundled)
#    -> speechlm/pretrained/whisper-phone-vocoder (the LM's and the vocoder's records name the
#    bundled tokenizer); the model outputs/switch-wphone/model links the three;
# 2. judged against the previous default (whisper-k100 + whisper-lm + whisper-vocoder) on the
#    same prompts and utterances, each paired with its committed report:
#    continuations of Allison Smith's 43 long real prompts (docs/tempo-allison-continue, the
#    previous default with its fitted tempo) -> docs/switch-wphone-allison-continue{,-compare};
#    the probes on the held-out voices through the LM as shipped -> docs/switch-wphone-lm (beside
#    docs/whisper-phone-lm, its float32 weights, and docs/switch-whisper-lm, the previous LM);
#    resynthesis of her 217 prompts (docs/switch-whisper-allison) -> docs/switch-wphone-allison
#    {,-compare}, and its floor (the prompts' own units shuffled) -> docs/switch-wphone-allison-
#    floor; resynthesis of the held-out engines and of known voices' held-out sentences
#    (docs/switch-whisper-vocoder-{heldout,test}) -> docs/switch-wphone-vocoder-{heldout,test},
#    docs/switch-wphone-compare-{heldout,test}; the int8 vocoder against the float16 export make
#    whisper-phone judged (docs/whisper-phone-heldout) -> docs/switch-wphone-int8-heldout;
#    continuations of the held-out engines (one prompt per voice identity, 2 samples), paired
#    with the first phone default's docs/continue-default -> docs/switch-wphone-heldout-continue
#    {,-compare}; the drawn-F0 path's voicing threshold swept against the source's voicing on the
#    valid subset and, as a diagnostic, on Allison -> docs/wphone-drawn-voicing-{valid,allison}.
# Every report is kept when its JSON exists (a rerun picks up where a killed one stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, compare, judge_vocoder,
#                                   export_last_vocoder, export_lm_half
P=speechlm/pretrained
S=outputs/switch-wphone
R=data/real
PROBES=${PROBES:-data/probes-v2}
TOK=outputs/tokenizers/whisper-phone-ctc
LM_RUN=outputs/lm-whisper-phone
VOC_RUN=outputs/vocoder-whisper-phone
for f in "$TOK/config.json" "$LM_RUN/model/config.json" "$VOC_RUN/state.safetensors" \
         "$R/allison/allison.tsv" "$CORPUS/heldout.tsv"; do
  [ -f "$f" ] || { echo "wphone-default: $f is missing: make whisper-phone (and make real-voice)" \
    "build it" >&2; exit 2; }
done
for f in docs/tempo-allison-continue.json docs/switch-whisper-allison.json \
         docs/switch-whisper-vocoder-heldout.json docs/switch-whisper-vocoder-test.json; do
  [ -f "$f" ] || { echo "wphone-default: $f is missing: the previous default's report the new" \
    "one is paired with (git checkout -- $f)" >&2; exit 2; }
done
mkdir -p "$S/model" docs

# 1. the bundles
[ -f "$P/whisper-phone/config.json" ] || "$PY" - "$TOK" "$P/whisper-phone" <<'PYCODE'
import sys

from speechlm.tokenizer import Tokenizer

tok = Tokenizer.load(sys.argv[1])
print(tok.save(sys.argv[2], half=True), tok.unit_space)
PYCODE
[ -f "$P/whisper-phone-lm/config.json" ] || export_lm_half "$LM_RUN" "$P/whisper-phone-lm"
[ -f "$P/whisper-phone-vocoder/config.json" ] || export_last_vocoder "$VOC_RUN" \
  "$P/whisper-phone-vocoder" last "speaker.,pre.,post.,duration.blocks."
# the LM's and the vocoder's records name the tokenizer they were trained on by its run's path;
# the bundles name the bundled copy (the same unit space), which eval and vocode load by that name
"$PY" - "$P/whisper-phone-lm" "$P/whisper-phone-vocoder" <<'PYCODE'
import json
import sys

from speechlm.io import write_json_atomic

for d in sys.argv[1:]:
    cfg = json.load(open(f"{d}/config.json"))
    if cfg["training"].get("tokenizer") != "whisper-phone":
        cfg["training"]["tokenizer"] = "whisper-phone"
        write_json_atomic(f"{d}/config.json", cfg)
PYCODE
for st in tokenizer:whisper-phone lm:whisper-phone-lm vocoder:whisper-phone-vocoder; do
  ln -sfn "$PWD/$P/${st#*:}" "$S/model/${st%%:*}"
done

# 2. judged against the previous default's committed reports
report docs/switch-wphone-allison-continue continue --quiet --model "$S/model" \
  --wav-dir "$R/allison" --per-voice 0 --reference-voices "$R/others"
compare continue docs/tempo-allison-continue docs/switch-wphone-allison-continue \
  docs/switch-wphone-allison-continue-compare
# the probes through the float16 LM as shipped (make whisper-phone judged its float32 weights:
# docs/whisper-phone-lm)
heldout_probes "$PROBES"
report docs/switch-wphone-lm lm --quiet --model whisper-phone-lm --corpus "$CORPUS" --probes "$PROBES"
judge_vocoder docs/switch-wphone-vocoder whisper-phone-vocoder
for split in heldout test; do
  compare resynth "docs/switch-whisper-vocoder-$split" "docs/switch-wphone-vocoder-$split" \
    "docs/switch-wphone-compare-$split"
done
[ ! -f docs/whisper-phone-heldout.json ] || compare resynth docs/whisper-phone-heldout \
  docs/switch-wphone-vocoder-heldout docs/switch-wphone-int8-heldout
report docs/switch-wphone-allison resynth --quiet --vocoder whisper-phone-vocoder \
  --wav-dir "$R/allison" --per-voice 0 --methods hn-f0,hn --asr whisper \
  --reference-voices "$R/others"
compare resynth docs/switch-whisper-allison docs/switch-wphone-allison \
  docs/switch-wphone-allison-compare
# continuations of the held-out engines (the first 3 s of one utterance per voice identity, 2
# samples), paired with docs/continue-default (make eval-continue's report of the first phone
# default on the same prompts and seeds)
report docs/switch-wphone-heldout-continue continue --quiet --model "$S/model" --corpus "$CORPUS" \
  --data heldout --per-voice 1 --num-samples 2 --seed 0
[ ! -f docs/continue-default.json ] || compare continue docs/continue-default \
  docs/switch-wphone-heldout-continue docs/switch-wphone-heldout-continue-compare
# the drawn-F0 path's voicing (no judge): the bundled threshold (0.35, chosen on k-means units)
# swept on the valid subset where settings are chosen, and the same sweep on Allison as a
# diagnostic only (nothing is chosen on her)
valid40 outputs/f0-spread-eval
for d in valid:outputs/f0-spread-eval/valid40.tsv allison:"$R/allison/allison.tsv"; do
  [ -f "docs/wphone-drawn-voicing-${d%%:*}.json" ] || "$PY" scripts/drawn_voicing_sweep.py \
    --model "$S/model" --data "${d#*:}" --thresholds 0.2,0.25,0.3,0.35,0.4,0.45,0.5 --widths 9 \
    --json "docs/wphone-drawn-voicing-${d%%:*}.json"
done
report docs/switch-wphone-allison-floor resynth --quiet --vocoder whisper-phone-vocoder \
  --wav-dir "$R/allison" --per-voice 0 --methods floor --asr whisper --reference-voices "$R/others"
echo "docs/switch-wphone-{allison-continue,allison-continue-compare,lm,vocoder-heldout,vocoder-test," \
  "compare-heldout,compare-test,int8-heldout,allison,allison-compare,heldout-continue," \
  "heldout-continue-compare,allison-floor}.{json,md} docs/wphone-drawn-voicing-{valid,allison}.json"
