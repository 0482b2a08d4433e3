#!/usr/bin/env bash
# Where does resynthesis lose the words (issue 15's WER)? The bundled phone-vocoder's predicted
# log-mel, heard through two waveform methods, against the original's own log-mel through the
# same two (copy synthesis), on the same utterances, judged by Whisper:
#   bash scripts/mel_limit_reports.sh        (make mel-limit; ~20 min on 2 cores)
#
# 1. the held-out engines (2 utterances per voice, 61: the utterances of every held-out vocoder
#    report): hn-f0 (the bundle's waveform stage on its predicted log-mel, source F0),
#    griffinlim (Griffin-Lim of the same predicted log-mel), copy-hn and copy-gl (the
#    original's log-mel through the stage, and through Griffin-Lim)
#    -> docs/vocoder-mel-limit-heldout.{json,md};
# 2. utterances the bundled vocoder *trained on* (62 drawn with a fixed seed from its training
#    cache data/vocoder/v2-phone-k100-<tag>): hn-f0 and copy-gl -> docs/vocoder-mel-limit-fit.*.
#    Not a held-out figure: it asks whether the decoder fits its own training data.
# Each report is skipped when its JSON exists. Needs the world corpus (make corpus-world) and
# the bundled vocoder's training cache (made by scripts/switch_default_units.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, resynth_heldout
E=outputs/mel-limit
mkdir -p "$E" docs
resynth_heldout docs/vocoder-mel-limit-heldout phone-vocoder hn-f0,griffinlim,copy-hn,copy-gl

TAG=$("$PY" -c "import json; print(json.load(open('speechlm/pretrained/phone-vocoder/config.json'))['unit_space'].rsplit('-', 1)[1])")
CACHE=data/vocoder/v2-phone-k100-$TAG
[ -f "$CACHE/train.json" ] || { echo "mel-limit: $CACHE (the bundled vocoder's training cache) is missing" >&2; exit 2; }
[ -f "$E/fit.wrd" ] || "$PY" - "$CORPUS" "$CACHE/train.json" "$E/fit" <<'PY'
import json
import random
import sys

from speechlm.data.manifest import read_manifest, write_manifest

corpus, cache, out = sys.argv[1:]
names = {u[0] for u in json.load(open(cache))["utterances"]}
utts = read_manifest(f"{corpus}/train.tsv")
seen = [i for i, u in enumerate(utts) if u.name in names]
random.seed(0)
root = open(f"{corpus}/train.tsv").readline().strip()
write_manifest(f"{out}.tsv", root, [utts[i] for i in sorted(random.sample(seen, 62))])
PY
report docs/vocoder-mel-limit-fit resynth --quiet --vocoder phone-vocoder --data "$E/fit.tsv" \
  --per-voice 0 --methods hn-f0,copy-gl --asr whisper
