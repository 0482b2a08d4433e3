#!/usr/bin/env bash
# Is the vocoder's decoder short of capacity (issue 15's WER)? The bundled phone-vocoder's loss
# on its own training data is no lower than on valid, and it loses as many words on utterances
# it trained on as on unheard voices (make mel-limit). So: grow it and train on.
#   bash scripts/vocoder_grow.sh             (make vocoder-grow; ~1 h on 2 cores)
#
# 1. two runs of configs/vocoder/phone-cpu-grow.toml side by side (one thread each), both
#    warm-started from the bundled vocoder on its own units and training cache, 2,000 steps:
#    "grow" adds 1 pre and 3 post blocks (each new block starts as the identity: its output
#    projection is zero, speechlm.train.vocoder.grow_state), "control" keeps the bundled 3 + 5;
# 2. each exported from its last weights with the bundled settings (export_last_vocoder);
# 3. both judged on the held-out engines (2 utterances per voice, 61, source F0: the utterances
#    of docs/vocoder-source-f0-1-heldout, the bundle's own report) and paired: grow against
#    control, and each against the bundle -> docs/vocoder-grow-*.
# Every step resumes or is skipped when its output exists. Needs the world corpus and the
# bundled vocoder's training cache (scripts/switch_default_units.sh made both).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, resynth_heldout, compare, train_exported
CONFIG=configs/vocoder/phone-cpu-grow.toml
E=outputs/vocoder-grow-eval
BUNDLE=docs/vocoder-source-f0-1-heldout
mkdir -p "$E" docs
[ -f "$BUNDLE.json" ] || resynth_heldout "$BUNDLE" phone-vocoder hn-f0

train_exported "$E" "$CONFIG" grow &
GROW=$!
trap 'kill "$GROW" 2>/dev/null || true' EXIT
train_exported "$E" "$CONFIG" grow-control --model.pre_blocks=3 --model.post_blocks=5
wait "$GROW"
trap - EXIT
for name in grow grow-control; do
  resynth_heldout "docs/vocoder-$name-heldout" "$E/$name" hn-f0
done
compare resynth docs/vocoder-grow-control-heldout docs/vocoder-grow-heldout docs/vocoder-grow-compare-heldout
compare resynth "$BUNDLE" docs/vocoder-grow-heldout docs/vocoder-grow-vs-bundled-heldout
compare resynth "$BUNDLE" docs/vocoder-grow-control-heldout docs/vocoder-grow-control-vs-bundled-heldout
