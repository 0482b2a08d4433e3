#!/usr/bin/env bash
# Finer Whisper units through the decoder (issues 14-15): K = 500 instead of 100, everything else
# the bundled whisper-vocoder's recipe (configs/vocoder/whisper-k500-cpu.toml). make whisper-k500
# (~10 min of units, ~40 min of training on one thread, ~35 min of judging, then ~35 min for the
# LM):
# 1. the tokenizer: k-means K = 500 over layer 3 (outputs/tokenizers/whisper-l3-k500, fitted as
#    the K = 100 one was, scripts/lib/heldout_reports.sh whisper_tokenizer);
# 2. the decoder (outputs/vocoder-whisper-k500-eval/whisper-k500: its last weights, float16);
# 3. judged with the source F0 on Allison's 217 real prompts by Whisper and pocketsphinx, paired
#    with the same recipe at K = 100 judged the same way (docs/whisper-units-allison, make
#    whisper-units), and on the held-out engines, paired with docs/whisper-units-heldout;
# 4. the bundled LM's recipe on the same units (configs/lm/whisper-k500-cpu.toml: it tokenizes the
#    corpus first), its test perplexity and probes (docs/whisper-k500-lm) beside the bundled
#    whisper-lm's (docs/switch-whisper-lm, the same probes).
# Every step is skipped when its output exists. Env: THREADS (1: the training's torch threads).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, train_exported, resynth_heldout,
#                                   compare, whisper_tokenizer, lm_probes
E=outputs/vocoder-whisper-k500-eval
R=data/real
for f in docs/whisper-units-allison.json docs/whisper-units-heldout.json; do
  [ -f "$f" ] || { echo "whisper-k500: $f (the K = 100 side) is missing: run make whisper-units" >&2; exit 2; }
done
for f in "$CORPUS/train.tsv" data/vocoder/v2-phone-k100-8b1f9cc1/train.json; do
  [ -f "$f" ] || { echo "whisper-k500: $f is missing: run make corpus-world HOURS=12.5, then make default-units" >&2; exit 2; }
done
[ -f "$R/allison/allison.tsv" ] || SL=$SL bash scripts/build_real_voice.sh
mkdir -p "$E" docs
whisper_tokenizer 500 > /dev/null
train_exported "$E" configs/vocoder/whisper-k500-cpu.toml whisper-k500 --train.threads="${THREADS:-1}"
report docs/whisper-k500-allison resynth --quiet --vocoder "$E/whisper-k500" --wav-dir "$R/allison" \
  --per-voice 0 --methods hn-f0 --asr whisper,pocketsphinx --reference-voices "$R/others"
compare resynth docs/whisper-units-allison docs/whisper-k500-allison docs/whisper-k500-compare-allison
resynth_heldout docs/whisper-k500-heldout "$E/whisper-k500" hn-f0
compare resynth docs/whisper-units-heldout docs/whisper-k500-heldout docs/whisper-k500-compare-heldout
lm_probes whisper-k500 configs/lm/whisper-k500-cpu.toml
echo "docs/whisper-k500-{allison,compare-allison,heldout,compare-heldout,lm}.{json,md}"
