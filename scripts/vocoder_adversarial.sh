# make vocoder-adversarial: does an adversarial loss on the log-mel bring back the words the
# decoder's L1 regression loses (issue 15)? Two runs of configs/vocoder/phone-cpu-adversarial.toml
# (the bundled vocoder, 2,000 more steps with a patch critic beside it): "adv" (adversarial 0.1,
# feature matching 1) and "adv-strong" (0.5, 5), side by side on one core each (~45 min on 2
# cores). Each is exported from its last weights with the bundled settings and judged with
# Whisper (source F0) on 40 known voices' held-out sentences (valid40) and on the held-out
# engines (2 utterances per voice), paired with the control: the same 2,000 steps without the
# critic (make vocoder-grow's, copied; trained here when absent), and with the bundle.
# Rerun to continue: finished runs and existing reports are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, resynth_heldout, compare, train_exported
CONFIG=configs/vocoder/phone-cpu-adversarial.toml
E=outputs/vocoder-adversarial-eval
BUNDLE=docs/vocoder-source-f0-1-heldout
CONTROL=docs/vocoder-grow-control-heldout
mkdir -p "$E" docs
[ -f "$BUNDLE.json" ] || resynth_heldout "$BUNDLE" phone-vocoder hn-f0

train() {  # name overrides...
  train_exported "$E" "$CONFIG" "$@"
}
train adv --train.adversarial=0.1 --train.feature_matching=1 &
ADV=$!
trap 'kill "$ADV" 2>/dev/null || true' EXIT
train adv-strong --train.adversarial=0.5 --train.feature_matching=5
wait "$ADV"
trap - EXIT
# the control: the same recipe without the critic (make vocoder-grow's, when it was run)
if [ -f outputs/vocoder-grow-eval/grow-control/config.json ] && [ ! -d "$E/grow-control" ]; then
  cp -r outputs/vocoder-grow-eval/grow-control "$E/grow-control"
fi
train grow-control --train.adversarial=0 --train.feature_matching=0
resynth_heldout "$CONTROL" "$E/grow-control" hn-f0
# the choice between the two weights is made on known voices' held-out sentences (valid40: one
# utterance per identity of the valid split), before the held-out engines
valid40 outputs/f0-spread-eval
for name in grow-control adv adv-strong; do
  report "docs/vocoder-$name-valid" resynth --quiet --vocoder "$E/$name" \
    --data outputs/f0-spread-eval/valid40.tsv --per-voice 1 --methods hn-f0 --asr whisper
done
for name in adv adv-strong; do
  compare resynth docs/vocoder-grow-control-valid "docs/vocoder-$name-valid" \
    "docs/vocoder-$name-compare-valid"
done
for name in adv adv-strong; do
  resynth_heldout "docs/vocoder-$name-heldout" "$E/$name" hn-f0
  compare resynth "$CONTROL" "docs/vocoder-$name-heldout" "docs/vocoder-$name-compare-heldout"
  compare resynth "$BUNDLE" "docs/vocoder-$name-heldout" "docs/vocoder-$name-vs-bundled-heldout"
done
