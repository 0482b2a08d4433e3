#!/usr/bin/env bash
# Judge the drawn F0 contour's spread (f0_spread in the vocoder's config.json: 1 draws each
# frame's log-F0 from the vocoder's distribution, 0 takes each frame's median; the path
# `continue` speaks with, where there is no source F0) on the bundled phone-vocoder, nothing
# retrained, by scripts/vocoder_setting_reports.sh: the spreads SPREADS (default 1 0.5 0) on 40
# valid utterances, paired against 1 (docs/vocoder-f0-spread-valid-*), then CHOSEN once on the
# held-out engines against the bundle's own drawn-F0 report (docs/vocoder-f0-spread-*-heldout.*).
set -euo pipefail
cd "$(dirname "$0")/.."
SETTING=f0_spread STEM=f0-spread VALUES=${SPREADS:-1 0.5 0} REF=1 METHOD=hn \
  exec bash scripts/vocoder_setting_reports.sh
