#!/usr/bin/env bash
# The continuation carries on the prompt's intonation (issue 15, the LM-output path). Until now
# `continue` drew the whole F0 contour, the prompt's part too, and the intonation model
# (make wphone-contour) saw only units. Now the prompt is spoken with its own F0
# (SpeechLM.continue_audio prompt_pitch, the default), and an intonation model trained with
# known prefixes (configs/vocoder/contour-prompt-cpu.toml) reads that F0 and draws the rest.
# make wphone-prompt-contour (~35 min of training on one core, ~15 min per report):
# 1. the default vocoder's analysed world corpus (data/vocoder/v2-wphone-ctc), when missing,
#    built from the corpus with the bundled tokenizer (make whisper-phone made it by relabelling
#    the phone-k100 cache with the float32 head it exported; the same utterances, F0 and mels);
# 2. the model (-> outputs/contour-prompt/model; resumes a killed run, leaves a finished one),
#    and what a known prefix is worth to it on the valid split, its loss where none is known
#    against the bundled model's (scripts/contour_prefix_gain.py
#    -> docs/prompt-contour-prefix-gain.json);
# 3. Allison's continuations (her 43 long prompts x 3 samples, her voice never trained on):
#    a. the bundle as shipped, which now speaks the prompt with its own F0, paired with the
#       same bundle drawing the prompt's F0 too (make wphone-contour CHOSEN=1 CONTINUE=1's report,
#       the same LM samples) -> docs/prompt-pitch-allison-continue{,-compare}.{json,md};
#    b. a copy of the bundle with the new model (outputs/wphone-prompt-contour/vocoder), paired
#       with a. -> docs/prompt-contour-allison-continue{,-compare}.{json,md};
# 4. where nothing is known, the drawn path of resynthesis: the copy on 80 of Allison's prompts,
#    paired with the bundle's report on them (make wphone-contour CHOSEN=1)
#    -> docs/prompt-contour-allison{,-compare}.{json,md};
# 5. HELDOUT=1: the continuations on the held-out engines (1 prompt per voice), b. against a.
#    -> docs/prompt-{pitch,contour}-heldout-continue{,-compare}.{json,md}; with WEIGHT=W, also
#    W against a copy at 0 (a.) on the held-out engines' continuations and drawn-path
#    resynthesis -> docs/drawn-f0-weight-W-heldout{-continue,}{,-compare}.*,
#    docs/drawn-f0-weight-0-heldout.*;
# WEIGHT=W: the drawn path speaking its drawn contour itself (Vocoder.drawn_f0_weight; the bundle
#    speaks the decoder's estimate given it, 0): a copy of the bundle at W (its intonation model
#    unchanged) on Allison's continuations against a. and on her 80 prompts' drawn-path
#    resynthesis against a copy at 0 judged the same way
#    -> docs/drawn-f0-weight-W-allison{-continue,}{,-compare}.*, docs/drawn-f0-weight-0-allison.*;
# SHIP_WEIGHT=W (after reading WEIGHT=W's reports): W as the bundled vocoder's drawn_f0_weight
#    (its config.json only; no weights are rewritten);
# SHIP=1 (after reading 3): the new model in float16 into the bundled vocoder
#    (speechlm/pretrained/whisper-phone-vocoder/contour, replaced), where Vocoder.load finds it.
# Each report is kept when its JSON exists (a rerun picks up where a killed one stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/heldout_reports.sh
source scripts/lib/heldout_reports.sh
need() { [ -f "$1" ] || { echo "wphone-prompt-contour: $1 is missing: run $2" >&2; exit 2; }; }
need "$CORPUS/corpus.json" "make corpus-world (or HOURS=12.5 bash scripts/build_corpus.sh)"
need data/real/allison/allison.tsv "make real-voice"
need docs/wphone-contour-1-allison-continue.json "make wphone-contour CHOSEN=1 CONTINUE=1"
need docs/wphone-contour-1-allison.json "make wphone-contour CHOSEN=1"
CACHE=data/vocoder/v2-wphone-ctc
[ -f "$CACHE/valid.json" ] || "$PY" - "$CORPUS" "$CACHE" <<'PY'
import sys

from speechlm.train.vocoder import build_cache, load_config

corpus, cache = sys.argv[1:]
cfg = load_config("configs/vocoder/whisper-phone-cpu.toml", [
    f"--data.corpus={corpus}", f"--data.cache={cache}", "--data.tokenizer=whisper-phone",
    "--data.feats_from="])
build_cache(cfg["data"], 0, 80, progress=False)
PY
RUN=${CONTOUR_RUN:-outputs/contour-prompt}
$SL train vocoder --config configs/vocoder/contour-prompt-cpu.toml "--train.out=$RUN" \
  --quiet > /dev/null
# what the known prefix is worth to it on the valid split, and its loss where nothing is known
# against the bundled model (run once, before SHIP replaces that)
[ -f docs/prompt-contour-prefix-gain.json ] || "$PY" scripts/contour_prefix_gain.py \
  "$RUN/model" --cache "$CACHE" --base speechlm/pretrained/whisper-phone-vocoder/contour \
  --json docs/prompt-contour-prefix-gain.json > /dev/null
E=outputs/wphone-prompt-contour
mkdir -p "$E"
[ -d "$E/vocoder" ] || "$PY" - "$E/vocoder" "$RUN/model" <<'PY'
import sys

from speechlm.vocoder import Vocoder

out, contour = sys.argv[1:]
Vocoder.load("whisper-phone-vocoder").use_contour(contour).set_drawn_f0_weight(0).save(
    out, half=True, int8=("speaker.", "pre.", "post.", "duration.blocks."))
PY
# weight_copy W: $E/weight-W/{vocoder,model}, the bundle speaking its drawn contour at weight W
# (its intonation model unchanged), and the default model through it
weight_copy() {
  local w=$E/weight-$1
  [ -d "$w/vocoder" ] || "$PY" - "$w/vocoder" "$1" <<'PY'
import sys

from speechlm.vocoder import Vocoder

out, weight = sys.argv[1:]
Vocoder.load("whisper-phone-vocoder").set_drawn_f0_weight(float(weight)).save(
    out, half=True, int8=("speaker.", "pre.", "post.", "duration.blocks."))
PY
  wphone_model "$w/model" "$w/vocoder"
}
M=$E/model
wphone_model "$M" "$E/vocoder"
A="--wav-dir data/real/allison --per-voice 0 --reference-voices data/real/others"
weight_copy 0  # a.: the bundle as judged then, speaking the decoder's estimate (weight 0)
# shellcheck disable=SC2086
report docs/prompt-pitch-allison-continue continue --quiet --model "$E/weight-0/model" $A
compare continue docs/wphone-contour-1-allison-continue docs/prompt-pitch-allison-continue \
  docs/prompt-pitch-allison-continue-compare
# shellcheck disable=SC2086
report docs/prompt-contour-allison-continue continue --quiet --model "$M" $A
compare continue docs/prompt-pitch-allison-continue docs/prompt-contour-allison-continue \
  docs/prompt-contour-allison-continue-compare
# where nothing is known (the drawn path of resynthesis): the new model against the bundled one
# on the same 80 of Allison's prompts (make wphone-contour CHOSEN=1's report)
report docs/prompt-contour-allison resynth --quiet --vocoder "$E/vocoder" \
  --wav-dir data/real/allison --per-voice 80 --methods hn --asr whisper
compare resynth docs/wphone-contour-1-allison docs/prompt-contour-allison \
  docs/prompt-contour-allison-compare
if [ -n "${WEIGHT:-}" ]; then
  weight_copy "$WEIGHT"
  W=$E/weight-$WEIGHT
  D=docs/drawn-f0-weight-$WEIGHT
  # shellcheck disable=SC2086
  report "$D-allison-continue" continue --quiet --model "$W/model" $A
  compare continue docs/prompt-pitch-allison-continue "$D-allison-continue" \
    "$D-allison-continue-compare"
  # the drawn path where nothing is known, W against the copy at 0 judged in the same session
  # (Whisper's output moves a little between machines: the originals' WER read 0.053 on one and
  # 0.056 on another, so a base judged elsewhere, such as make wphone-contour's, is not used)
  weight_copy 0
  for w in 0 "$WEIGHT"; do
    report "docs/drawn-f0-weight-$w-allison" resynth --quiet --vocoder "$E/weight-$w/vocoder" \
      --wav-dir data/real/allison --per-voice 80 --methods hn --asr whisper
  done
  compare resynth docs/drawn-f0-weight-0-allison "$D-allison" "$D-allison-compare"
  if [ -n "${HELDOUT:-}" ]; then
    # the held-out engines: W against a copy at 0 (the bundle before drawn_f0_weight), the
    # continuations (1 prompt per voice) and the drawn path of resynthesis (2 per voice)
    continue_heldout docs/prompt-pitch-heldout-continue "$E/weight-0/vocoder"
    continue_heldout "$D-heldout-continue" "$W/vocoder"
    compare continue docs/prompt-pitch-heldout-continue "$D-heldout-continue" \
      "$D-heldout-continue-compare"
    resynth_heldout docs/drawn-f0-weight-0-heldout "$E/weight-0/vocoder" hn
    resynth_heldout "$D-heldout" "$W/vocoder" hn
    compare resynth docs/drawn-f0-weight-0-heldout "$D-heldout" "$D-heldout-compare"
  fi
fi
if [ -n "${HELDOUT:-}" ]; then
  continue_heldout docs/prompt-pitch-heldout-continue "$E/weight-0/vocoder"
  continue_heldout docs/prompt-contour-heldout-continue "$E/vocoder"
  compare continue docs/prompt-pitch-heldout-continue docs/prompt-contour-heldout-continue \
    docs/prompt-contour-heldout-continue-compare
fi
if [ -n "${SHIP_WEIGHT:-}" ]; then  # the bundled vocoder's config only: no weights rewritten
  "$PY" - speechlm/pretrained/whisper-phone-vocoder/config.json "$SHIP_WEIGHT" <<'PY'
import json
import sys

from speechlm.io import write_json_atomic

path, weight = sys.argv[1:]
cfg = json.load(open(path))
cfg["drawn_f0_weight"] = float(weight)
write_json_atomic(path, cfg)
PY
fi
if [ -n "${SHIP:-}" ]; then
  "$PY" - "$RUN/model" speechlm/pretrained/whisper-phone-vocoder/contour <<'PY'
import sys

from speechlm.prosody import ContourModel

ContourModel.load(sys.argv[1]).save(sys.argv[2], half=True)
PY
fi
