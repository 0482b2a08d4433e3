#!/usr/bin/env bash
# Where the drawn-F0 path loses words: the default vocoder's drawn contour split into its pitch
# and its voicing (eval resynth's hn-drawn-f0, hn-src-voicing and hn-src-pitch), beside the
# source's contour (hn-f0) and the drawn one as shipped (hn), on the same utterances. make
# drawn-f0-split (~45 min on 2 cores; needs make real-voice and the world corpus):
# 1. Allison's real prompts, a seeded 80 of her 217 -> docs/drawn-f0-split-allison.{md,json};
#    the held-out engines, 2 utterances per voice -> docs/drawn-f0-split-heldout.{md,json};
#    Whisper judges, each beside the originals' WER;
# 2. each split method and hn paired with hn-f0 and with hn, utterance by utterance
#    (scripts/drawn_f0_parts.py) -> docs/drawn-f0-split-{allison,heldout}-pairs.{md,json}.
# Each report is kept when its JSON exists (a rerun picks up where a killed one stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/heldout_reports.sh
source scripts/lib/heldout_reports.sh
R=data/real
[ -f "$R/allison/allison.tsv" ] || { echo "drawn-f0-split: $R/allison/allison.tsv is missing: run make real-voice" >&2; exit 2; }
[ -f "$CORPUS/heldout.tsv" ] || { echo "drawn-f0-split: $CORPUS/heldout.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
M=hn-f0,hn,hn-drawn-f0,hn-src-voicing,hn-src-pitch
mkdir -p docs
report docs/drawn-f0-split-allison resynth --quiet --vocoder whisper-phone-vocoder \
  --wav-dir "$R/allison" --per-voice 80 \
  --methods "$M" --asr whisper
resynth_heldout docs/drawn-f0-split-heldout whisper-phone-vocoder "$M"
for d in allison heldout; do
  s=docs/drawn-f0-split-$d
  [ -f "$s-pairs.json" ] || "$PY" scripts/drawn_f0_parts.py "$s.json" --json "$s-pairs.json" \
    --markdown "$s-pairs.md" > /dev/null
done
echo "docs/drawn-f0-split-{allison,heldout}{,-pairs}.{json,md}"
