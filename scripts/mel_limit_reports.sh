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

corpus, cache, out = sys.argv[1:]
names = {u[0] for u in json.load(open(cache))["utterances"]}
lines = open(f"{corpus}/train.tsv").read().splitlines()
root, rows = lines[0], lines[1:]
words = open(f"{corpus}/train.wrd").read().splitlines()
spk = open(f"{corpus}/train.spk").read().splitlines()
assert len(rows) == len(words) == len(spk), "train.tsv, .wrd and .spk differ in length"
seen = [i for i, r in enumerate(rows) if r.split("\t")[0].rsplit(".", 1)[0] in names]
random.seed(0)
pick = sorted(random.sample(seen, 62))
for ext, body in (("tsv", root + "\n" + "".join(rows[i] + "\n" for i in pick)),
                  ("spk", "".join(spk[i] + "\n" for i in pick)),
                  ("wrd", "".join(words[i] + "\n" for i in pick))):  # .wrd last: the marker
    with open(f"{out}.{ext}.tmp", "w") as f:
        f.write(body)
for ext in ("tsv", "spk", "wrd"):
    __import__("os").replace(f"{out}.{ext}.tmp", f"{out}.{ext}")
PY
report docs/vocoder-mel-limit-fit resynth --quiet --vocoder phone-vocoder --data "$E/fit.tsv" \
  --per-voice 0 --methods hn-f0,copy-gl --asr whisper
