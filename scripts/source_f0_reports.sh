#!/usr/bin/env bash
# Judge the source-F0 path's output F0 (source_f0_weight in the vocoder's config.json: 0 keeps
# the decoder's own estimate, conditioned on the source contour; 1 speaks the source contour
# itself, at the voice's log-F0 level and range; the path `resynth` takes) on the bundled
# phone-vocoder, nothing retrained, by scripts/vocoder_setting_reports.sh: the weights WEIGHTS
# (default 0 0.5 1) on 40 valid utterances with the source F0, paired against 0
# (docs/vocoder-source-f0-valid-*), then CHOSEN once on the held-out engines against the
# bundle's own source-F0 report (docs/vocoder-source-f0-*-heldout.*).
set -euo pipefail
cd "$(dirname "$0")/.."
SETTING=source_f0_weight STEM=source-f0 VALUES=${WEIGHTS:-0 0.5 1} REF=0 METHOD=hn-f0 \
  exec bash scripts/vocoder_setting_reports.sh
