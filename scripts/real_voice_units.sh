#!/usr/bin/env bash
# Units on a real human voice (make real-voice-units, ~15 min): the bundled phone-k100 units and
# the former mfcc-k100 (the calibration: units that describe the sound) on Allison Smith's
# prompts, with phone labels from pocketsphinx's forced alignment (an aligner trained on real
# speech, independent of every encoder here; scripts/build_real_voice.sh writes them), beside
# the synthetic held-out engines labelled by the same aligner, so both sides are read against
# one set of labels:
#   data/real/heldout-ps          the corpus's held-out split (Pico, Piper, MBROLA us3) linked
#                                 with pocketsphinx labels; its summary (utterances aligned,
#                                 and on MBROLA us3 and Piper the share of non-silence frames
#                                 where the aligner agrees with the engine's own labels: what
#                                 its labels are worth)
#                                 -> docs/real-aligner.json
#   docs/real-units.{json,md}     eval tokenizer: PNMI, ABX, frame phone error, UED, per voice
# Env: CORPUS (data/corpus-v2); SL, PY.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report
R=data/real
[ -f "$R/allison/allison.tsv" ] || { echo "real-voice-units: $R/allison/allison.tsv is missing: run make real-voice" >&2; exit 2; }
mkdir -p docs
[ -f docs/real-aligner.json ] || "$PY" - "$CORPUS" "$R/heldout-ps" docs/real-aligner.json <<'PY'
import json
import sys

from speechlm.data.manifest import read_manifest, resolve_manifest
from speechlm.data.real import relabel
from speechlm.io import write_json_atomic

corpus, out, report = sys.argv[1:]
stats = relabel(read_manifest(resolve_manifest("heldout", corpus)), out)
base: dict[str, dict[str, int]] = {}
for spk, st in stats.items():
    b = base.setdefault(spk.split("-")[0], {"utterances": 0, "aligned": 0, "frames": 0,
                                            "agree": 0})
    for k in b:
        b[k] += st[k]
for b in base.values():
    b["engine_agreement"] = round(b["agree"] / b["frames"], 4) if b["frames"] else None
write_json_atomic(report, {"aligner": "pocketsphinx en-us (forced alignment)",
                           "split": f"{corpus} heldout", "base_voices": base, "voices": stats,
                           "engine_agreement": "share of the non-silence 20 ms frames with "
                           "engine labels whose pocketsphinx label is the engine's own (Pico "
                           "gives none)"})
print(json.dumps(base))
PY
report docs/real-units tokenizer --manifest "$R/allison/allison.tsv" \
  --manifest "$R/heldout-ps/heldout-ps.tsv" --tokenizer mfcc-k100 --tokenizer phone-k100 \
  --max-utterances 200
echo "docs/real-aligner.json docs/real-units.{json,md}"
