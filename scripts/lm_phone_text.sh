#!/usr/bin/env bash
# Text in the unit space (issue 16): the bundled units are phones (whisper-phone's CTC phone
# string), so the text pool's 1.9M training-split words, spelled with CMUdict, are unit sequences
# the LM reads with no marker and no new token (speechlm/data/phone_text.py). Does that text
# teach the LM the words that 12.5 h of units do not?
# make lm-phone-text (~2 x 35 min of training on one core each, ~5 min of probes):
# 1. the held-out voices' probes (data/probes-v2: pico_us, piper_joe, mbrola_us3), when missing;
# 2. the control: the bundled LM's recipe, units only (configs/lm/whisper-phone-cpu.toml with
#    the bundled tokenizer), on the world corpus's whisper-phone units (tokenized on first use
#    into data/units/v2-wphone-ctc-*) -> outputs/lm-wphone-units;
# 3. the same recipe, the same steps, on those units mixed with 4 x as many tokens of phone text
#    (configs/lm/whisper-phone-text-cpu.toml) -> outputs/lm-wphone-text;
# 4. each one's test perplexity (units only: the same test split) and probes on the held-out
#    voices, with the n-gram baselines, and where the LM's units are phone classes the aligned
#    voices' items from their reference phones -> docs/lm-wphone-{units,text}.{json,md}
#    (and the bundled LM the same way, docs/lm-wphone-bundled.*), and the two
#    paired over the same probe trials (eval compare-lm) -> docs/lm-wphone-text-compare.*.
# Both runs resume when killed; PAR=1 trains them side by side (one core each). Env: THREADS
# (each training's torch threads; 1), PROBES (data/probes-v2).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/heldout_reports.sh
source scripts/lib/heldout_reports.sh
[ -f "$CORPUS/corpus.json" ] || {
  echo "lm-phone-text: $CORPUS/corpus.json is missing: run make corpus-world" >&2; exit 2; }
[ -f "$CORPUS/text/sentences.tsv" ] || {
  echo "lm-phone-text: $CORPUS/text/sentences.tsv is missing: rebuild the corpus with" \
    "make corpus-world (the world preset writes the text pool)" >&2; exit 2; }
PROBES=${PROBES:-data/probes-v2}
heldout_probes "$PROBES"
mkdir -p outputs
T=--train.threads=${THREADS:-1}
units() {
  $SL train lm --config configs/lm/whisper-phone-cpu.toml "--data.corpus=$CORPUS" \
    --data.tokenizer=whisper-phone --train.out=outputs/lm-wphone-units "$T" \
    > outputs/lm-wphone-units.log 2>&1
}
text() {
  $SL train lm --config configs/lm/whisper-phone-text-cpu.toml "--data.corpus=$CORPUS" "$T" \
    > outputs/lm-wphone-text.log 2>&1
}
if [ -n "${PAR:-}" ]; then  # the text run waits for the shards the control tokenizes
  units &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && [ ! -f data/units/v2-wphone-ctc-dedup/valid.json ]; do
    sleep 10
  done
  text
  wait "$pid"
else
  units
  text
fi
for run in units text; do
  report "docs/lm-wphone-$run" lm --quiet --model "outputs/lm-wphone-$run/model" \
    --corpus "$CORPUS" --probes "$PROBES"
done
# the bundled LM on the same probes and shards: how far two runs of one recipe lie apart
report docs/lm-wphone-bundled lm --quiet --model whisper-phone-lm --corpus "$CORPUS" \
  --probes "$PROBES" --units-dir data/units/v2-wphone-ctc-dedup
compare lm docs/lm-wphone-units docs/lm-wphone-text docs/lm-wphone-text-compare
