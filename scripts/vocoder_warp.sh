#!/usr/bin/env bash
# Does warping the training voices teach the decoder voices rather than its 216 identities
# (issue 15's WER on unheard voices)? make vocoder-warp (~25 min of training on 2 threads, ~10 min
# of judging):
# 1. configs/vocoder/phone-cpu-warp.toml: make vocoder-grow's control recipe (the bundled weights,
#    2,000 steps, the same seed and batches) with half the crops' voices warped (target and
#    reference log-mel stretched along the mel axis by one factor in [0.88, 1.12]), exported from
#    its last weights with the bundled settings (outputs/vocoder-warp-eval/warp);
# 2. its loss beside the bundle's and the control's on known voices and on the held-out engines
#    (vocoder_losses; make vocoder-loss-wer: among L1-trained decoders the held-out loss ranks
#    held-out WER) -> docs/vocoder-warp-loss.json;
# 3. judged with the source F0 on the held-out engines (61 utterances), paired with the control
#    (docs/vocoder-grow-control-heldout, make vocoder-grow) and with the bundle.
# Every step is skipped when its output exists. Env: THREADS (2: the training's torch threads).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, train_exported, vocoder_losses, resynth_heldout, compare
E=outputs/vocoder-warp-eval
BUNDLE=docs/vocoder-source-f0-1-heldout
CONTROL=docs/vocoder-grow-control-heldout
CONTROL_VOC=outputs/vocoder-grow-eval/grow-control
for f in "$CONTROL.json" "$CONTROL_VOC/config.json"; do
  [ -f "$f" ] || { echo "vocoder-warp: $f is missing: run make vocoder-grow first" >&2; exit 2; }
done
mkdir -p "$E" docs
[ -f "$BUNDLE.json" ] || resynth_heldout "$BUNDLE" phone-vocoder hn-f0
train_exported "$E" configs/vocoder/phone-cpu-warp.toml warp --train.threads="${THREADS:-2}"
vocoder_losses docs/vocoder-warp-loss.json phone-vocoder "$CONTROL_VOC" "$E/warp"
resynth_heldout docs/vocoder-warp-heldout "$E/warp" hn-f0
compare resynth "$CONTROL" docs/vocoder-warp-heldout docs/vocoder-warp-compare-heldout
compare resynth "$BUNDLE" docs/vocoder-warp-heldout docs/vocoder-warp-vs-bundled-heldout
