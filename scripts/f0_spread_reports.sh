#!/usr/bin/env bash
# Judge the drawn F0 contour's spread (f0_spread in the vocoder's config.json: 1 draws each
# frame's log-F0 from the vocoder's distribution, 0 takes each frame's median; the path
# `continue` speaks with, where there is no source F0) on the bundled phone-vocoder, nothing
# retrained:
#   1. choose on known voices: 40 utterances of the world corpus's valid split (held-out
#      sentences; one per identity, drawn with a fixed seed) resynthesized with a drawn F0
#      (eval resynth --methods hn) at each spread of SPREADS, paired against spread 1
#      -> docs/vocoder-f0-spread-valid-{S,compare-S}.*;
#   2. confirm the chosen one (CHOSEN, set after reading step 1; empty: stop after step 1) once
#      on voices no model here heard: the held-out engines, 2 utterances per voice, paired
#      against the bundle's own drawn-F0 report on the same utterances (BASE, the switch's)
#      -> docs/vocoder-f0-spread-{S,compare-S}-heldout.*.
# ~3 min per spread on valid, ~6 on held-out (2 cores). Needs the world corpus sample.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh
SPREADS=${SPREADS:-1 0.5 0}
CHOSEN=${CHOSEN:-}
BASE=${BASE:-docs/switch-vocoder-new-b6400r-heldout}
E=outputs/f0-spread-eval
mkdir -p "$E"

# the valid subset: one utterance per identity, 40 identities, fixed seed
[ -f "$E/valid40.wrd" ] || "$PY" - "$CORPUS" "$E/valid40" <<'PY'
import random
import sys

corpus, out = sys.argv[1:]
lines = open(f"{corpus}/valid.tsv").read().splitlines()
words = open(f"{corpus}/valid.wrd").read().splitlines()
root, rows = lines[0], lines[1:]
assert len(rows) == len(words), "valid.tsv and valid.wrd differ in length"
order = list(range(len(rows)))
random.Random(0).shuffle(order)
seen, pick = set(), []
for i in order:
    ident = rows[i].split("/")[0]
    if ident not in seen:
        seen.add(ident)
        pick.append(i)
    if len(pick) == 40:
        break
pick.sort()
with open(f"{out}.tsv.tmp", "w") as f:
    f.write(root + "\n" + "".join(rows[i] + "\n" for i in pick))
with open(f"{out}.wrd.tmp", "w") as f:
    f.write("".join(words[i] + "\n" for i in pick))
PY
[ -f "$E/valid40.wrd" ] || { mv "$E/valid40.tsv.tmp" "$E/valid40.tsv"; mv "$E/valid40.wrd.tmp" "$E/valid40.wrd"; }

spread_copy() {  # OUT SPREAD: the bundled phone-vocoder with f0_spread SPREAD, saved as bundled
  "$PY" - "$1" "$2" <<'PY'
import sys

from speechlm.vocoder import Vocoder

out, spread = sys.argv[1:]
Vocoder.load("phone-vocoder").set_f0_spread(float(spread)).save(out, half=True,
                                                                 int8=("speaker.",))
PY
}

for s in $SPREADS; do
  [ -d "$E/vocoder-$s" ] || spread_copy "$E/vocoder-$s" "$s"
  report "docs/vocoder-f0-spread-valid-$s" resynth --quiet --vocoder "$E/vocoder-$s" \
    --data "$E/valid40.tsv" --per-voice 1 --methods hn --asr whisper
done
for s in $SPREADS; do
  [ "$s" = 1 ] || compare resynth docs/vocoder-f0-spread-valid-1 "docs/vocoder-f0-spread-valid-$s" \
    "docs/vocoder-f0-spread-valid-compare-$s"
done
[ -n "$CHOSEN" ] || exit 0
[ -d "$E/vocoder-$CHOSEN" ] || spread_copy "$E/vocoder-$CHOSEN" "$CHOSEN"
resynth_heldout "docs/vocoder-f0-spread-$CHOSEN-heldout" "$E/vocoder-$CHOSEN" hn
compare resynth "$BASE" "docs/vocoder-f0-spread-$CHOSEN-heldout" \
  "docs/vocoder-f0-spread-compare-$CHOSEN-heldout"
