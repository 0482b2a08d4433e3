#!/usr/bin/env bash
# The models bundled before the phone-unit default (mfcc-k100 units): the unit LM `unit-lm` and
# the WORLD unit vocoder `unit-vocoder`, restored from git history into outputs/baselines/ so
# that the reports can measure the new default against them. They left the package to keep the
# shipped weights under 40 MB; `speechlm ... --model outputs/baselines/unit-lm` (or
# `--vocoder outputs/baselines/unit-vocoder`) loads them. Needs a clone with history (not a
# shallow one). The third line of output, outputs/baselines/mfcc-default, holds the three former
# default stages together (tokenizer/, lm/, vocoder/) for --model.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=826ebba  # the last commit that bundled them
OUT=outputs/baselines
if ! git cat-file -e "$REV^{commit}" 2>/dev/null; then
  echo "restore_baselines: commit $REV is not in this clone (a shallow clone?); run 'git fetch --unshallow'" >&2
  exit 2
fi
mkdir -p "$OUT"
for m in unit-lm unit-vocoder; do
  if [ ! -f "$OUT/$m/config.json" ]; then
    rm -rf "$OUT/$m.tmp" && mkdir -p "$OUT/$m.tmp"
    git archive "$REV" "speechlm/pretrained/$m" | tar -x -C "$OUT/$m.tmp"
    mv "$OUT/$m.tmp/speechlm/pretrained/$m" "$OUT/$m" && rm -rf "$OUT/$m.tmp"
  fi
  echo "$OUT/$m"
done
# the whole former default as one model directory: speechlm continue --model outputs/baselines/mfcc-default
D="$OUT/mfcc-default"
mkdir -p "$D"
[ -d "$D/tokenizer" ] || cp -r speechlm/pretrained/mfcc-k100 "$D/tokenizer"
ln -sfn ../unit-lm "$D/lm"
ln -sfn ../unit-vocoder "$D/vocoder"
echo "$D"
