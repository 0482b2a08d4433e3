#!/usr/bin/env bash
# Judge what scripts/gpu_vocoder_scale.sh brought back from a lent GPU machine against the
# bundled phone-vocoder it started from, here on the CPU (~30 min):
#   bash scripts/gpu_vocoder_judge.sh DIR     (DIR: the run's files_at, holding best.tar,
#                                              last.tar, log.jsonl, done.json)
# 1. unpacks both exports into outputs/vocoder-gpu-eval/{best,last}; the run's log and summary
#    are kept as docs/vocoder-gpu-scale-{log.jsonl,done.json};
# 2. the log-mel L1 (normalized as the training loss is) and the other loss terms of the bundle
#    and both exports on the same batches of the bundled vocoder's own valid cache, unquantized
#    (the run saw a quantized copy), and of the held-out engines (vocoder_losses):
#    docs/vocoder-gpu-scale-valid-loss.json; make vocoder-loss-wer says how far such a loss
#    tracks held-out WER;
# 3. each judged with the source F0 (hn-f0) on valid40 (40 known identities' held-out sentences)
#    with Whisper, paired with the bundle: docs/vocoder-gpu-scale-{bundle,best,last}-valid*;
# 4. the one of lower valid40 WER (CHOSEN=best|last overrides) judged once on the held-out engines
#    (61 utterances, 2 per voice), paired with the bundle's own report
#    (docs/vocoder-source-f0-1-heldout): docs/vocoder-gpu-scale-heldout*.
# Every step is skipped when its output exists.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, resynth_heldout, compare, valid40,
#                                    vocoder_losses
DIR=${1:-}
E=outputs/vocoder-gpu-eval
S=docs/vocoder-gpu-scale
BUNDLE=docs/vocoder-source-f0-1-heldout
[ -n "$DIR" ] || { echo "gpu-vocoder-judge: give the directory the GPU run's files came back in" >&2; exit 2; }
for f in best.tar last.tar log.jsonl done.json; do
  [ -f "$DIR/$f" ] || { echo "gpu-vocoder-judge: $DIR/$f is missing: not the output of scripts/gpu_vocoder_scale.sh" >&2; exit 2; }
done
mkdir -p "$E" docs
for name in best last; do
  [ -d "$E/$name" ] || tar -xf "$DIR/$name.tar" -C "$E"
done
cp "$DIR/log.jsonl" "$S-log.jsonl"
cp "$DIR/done.json" "$S-done.json"
vocoder_losses "$S-valid-loss.json" phone-vocoder "$E/best" "$E/last"
valid40 outputs/f0-spread-eval
for name in bundle best last; do
  v=$E/$name
  [ "$name" != bundle ] || v=phone-vocoder
  report "$S-$name-valid" resynth --quiet --vocoder "$v" \
    --data outputs/f0-spread-eval/valid40.tsv --per-voice 1 --methods hn-f0 --asr whisper
done
for name in best last; do
  compare resynth "$S-bundle-valid" "$S-$name-valid" "$S-$name-compare-valid"
done
CHOSEN=${CHOSEN:-$("$PY" - "$S-best-valid.json" "$S-last-valid.json" <<'PY'
import json
import sys

wer = [json.load(open(f))["groups"]["training voices"]["hn-f0"]["wer"] for f in sys.argv[1:]]
print("best" if wer[0] < wer[1] else "last")
PY
)}
case "$CHOSEN" in best|last) ;; *) echo "gpu-vocoder-judge: CHOSEN must be best or last, got '$CHOSEN'" >&2; exit 2;; esac
echo "gpu-vocoder-judge: $CHOSEN judged on the held-out engines" >&2
[ -f "$BUNDLE.json" ] || resynth_heldout "$BUNDLE" phone-vocoder hn-f0
resynth_heldout "$S-heldout" "$E/$CHOSEN" hn-f0
compare resynth "$BUNDLE" "$S-heldout" "$S-compare-heldout"
