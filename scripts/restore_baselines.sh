#!/usr/bin/env bash
# The models bundled before the phone-unit default (mfcc-k100 units): the unit LM `unit-lm` and
# the WORLD unit vocoder `unit-vocoder`, restored from git history into outputs/baselines/ so
# that the reports can measure the new default against them. They left the package to keep the
# shipped weights under 40 MB; `speechlm ... --model outputs/baselines/unit-lm` (or
# `--vocoder outputs/baselines/unit-vocoder`) loads them. Needs a clone with history (not a
# shallow one). The third line of output, outputs/baselines/mfcc-default, holds the three former
# default stages together (tokenizer/, lm/, vocoder/) for --model. The fourth,
# outputs/baselines/phone-v1, holds the first phone-unit default (phone-k100, phone-lm and
# phone-vocoder as bundled at c7171dd, today's default) the same way, so that what refers to it
# survives a switch of the bundle: the encoder the phone-encoder experiments start from
# (scripts/build_phone_encoder_more.sh), and what `PREV=outputs/baselines/phone-v1 make
# switch-units` replaces when a switch is rebuilt after the bundle changed.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=826ebba  # the last commit that bundled them
REV_PHONE=c7171dd  # a commit that bundles the first phone-unit default
OUT=outputs/baselines
for r in "$REV" "$REV_PHONE"; do
  if ! git cat-file -e "$r^{commit}" 2>/dev/null; then
    echo "restore_baselines: commit $r is not in this clone (a shallow clone?); run 'git fetch --unshallow'" >&2
    exit 2
  fi
done
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
# the first phone-unit default, its three stages under the names --model reads
D="$OUT/phone-v1"
if [ ! -f "$D/vocoder/config.json" ]; then
  rm -rf "$D.tmp" && mkdir -p "$D.tmp"
  git archive "$REV_PHONE" speechlm/pretrained/phone-k100 speechlm/pretrained/phone-lm \
    speechlm/pretrained/phone-vocoder | tar -x -C "$D.tmp"
  rm -rf "$D" && mkdir -p "$D"
  for pair in tokenizer:phone-k100 lm:phone-lm vocoder:phone-vocoder; do
    mv "$D.tmp/speechlm/pretrained/${pair#*:}" "$D/${pair%%:*}"
  done
  rm -rf "$D.tmp"
fi
echo "$D"
