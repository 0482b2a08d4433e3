#!/usr/bin/env bash
# Can the vocoder's decoder speak an utterance it has learned by heart (issue 15's WER)? The
# bundled decoder loses as many words on 62 utterances it trained on (make mel-limit: WER 0.702,
# originals 0.287) as on unheard voices, with a training loss no lower than on valid. Either
# it cannot fit (its units, speaker vector and F0 cannot carry a spectrum even when it is
# learned by heart) or it has not seen enough (each training frame ~5 times per 3,000 steps of
# its recipe). So: train it on those 62 alone, and on ten times as many, and listen.
#   bash scripts/vocoder_overfit.sh          (make vocoder-overfit; ~75 min on 2 cores)
#
# 1. outputs/vocoder-overfit-eval/corpus: train = the 62 utterances (outputs/mel-limit/fit.*),
#    valid = valid40 (40 utterances of known identities, held-out sentences); corpus620: the
#    62 and 558 more of the bundled vocoder's training utterances (a seeded draw), same valid;
# 2. configs/vocoder/phone-cpu-overfit.toml on each, side by side (one thread each): from the
#    bundled weights, 2,000 steps (each frame of the 62 seen ~330 times; of the 620, ~33),
#    exported from its last weights with the bundled settings ("overfit", "overfit620");
#    beside the training loss, the log-mel L1 of the 62 averaged per unit run and per unit
#    (docs/vocoder-overfit-fit-l1.json: where a loss of the log's size stands);
# 3. both judged with the source F0 on the 62 (hn-f0, and copy-hn: the waveform stage on the
#    original's log-mel, the ceiling), paired with the bundle's make mel-limit report on the
#    same 62 (docs/vocoder-mel-limit-fit), and on the held-out engines (61), paired with the
#    bundle's own report: what learning a few utterances by heart costs elsewhere;
# 4. all three (bundle, overfit, overfit620) on new sentences of the 62's own voices (the test
#    split's utterances of those voices), paired: were the utterances learned, or the voices?
# Every step resumes or is skipped when its output exists. Needs make mel-limit's draw and
# report, the bundled vocoder's training cache and the world corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, valid40, train_exported, report, compare
CONFIG=configs/vocoder/phone-cpu-overfit.toml
E=outputs/vocoder-overfit-eval
FIT=outputs/mel-limit/fit
BUNDLE_FIT=docs/vocoder-mel-limit-fit
BUNDLE=docs/vocoder-source-f0-1-heldout
for f in "$FIT.tsv" "$FIT.wrd" "$BUNDLE_FIT.json"; do
  [ -f "$f" ] || { echo "vocoder-overfit: $f is missing: run make mel-limit first" >&2; exit 2; }
done
TAG=$("$PY" -c "import json; print(json.load(open('speechlm/pretrained/phone-vocoder/config.json'))['unit_space'].rsplit('-', 1)[1])")
CACHE=data/vocoder/v2-phone-k100-$TAG
[ -f "$CACHE/train.json" ] || { echo "vocoder-overfit: $CACHE (the bundled vocoder's training cache) is missing" >&2; exit 2; }
mkdir -p "$E/corpus" "$E/corpus620" docs
valid40 "$E"
for x in tsv wrd spk; do
  if [ -f "$FIT.$x" ]; then cp "$FIT.$x" "$E/corpus/train.$x"; fi
done
# the 62 and 558 more of the bundled cache's training utterances, drawn with a fixed seed
[ -f "$E/corpus620/train.wrd" ] || "$PY" - "$CORPUS" "$CACHE/train.json" "$FIT.tsv" \
  "$E/corpus620/train" <<'PY'
import json
import random
import sys

from speechlm.data.manifest import read_manifest, write_manifest

corpus, cache, fit, out = sys.argv[1:]
names = {u[0] for u in json.load(open(cache))["utterances"]}
have = {u.name for u in read_manifest(fit)}
utts = read_manifest(f"{corpus}/train.tsv")
more = [i for i, u in enumerate(utts) if u.name in names and u.name not in have]
random.seed(0)
pick = set(random.sample(more, 558)) | {i for i, u in enumerate(utts) if u.name in have}
root = open(f"{corpus}/train.tsv").readline().strip()
write_manifest(f"{out}.tsv", root, [utts[i] for i in sorted(pick)])
PY
for c in corpus corpus620; do
  cp "$E/valid40.tsv" "$E/$c/valid.tsv"
  cp "$E/valid40.wrd" "$E/$c/valid.wrd"
done
train_exported "$E" "$CONFIG" overfit620 --data.corpus="$E/corpus620" \
  --data.cache=data/vocoder/overfit620-phone-k100 &
BIG=$!
trap 'kill "$BIG" 2>/dev/null || true' EXIT
train_exported "$E" "$CONFIG" overfit --data.corpus="$E/corpus"
wait "$BIG"
trap - EXIT
# where its training loss lands: the log-mel L1 (normalized as the loss is) of the 62 averaged
# per unit run (copy-runs) and per unit (copy-unit-means), and of each utterance's mean frame
[ -f docs/vocoder-overfit-fit-l1.json ] || "$PY" - data/vocoder/overfit62-phone-k100 \
  docs/vocoder-overfit-fit-l1.json <<'PY'
import json
import sys

import numpy as np
import torch

from speechlm.eval.resynth import run_means, unit_means
from speechlm.io import write_json_atomic
from speechlm.vocoder import UPSAMPLE, Vocoder

cache, out = sys.argv[1:]
stats = Vocoder.load("phone-vocoder").model.mel_stats
meta = json.load(open(f"{cache}/train.json"))
units, feats = np.load(f"{cache}/train.units.npy"), np.load(f"{cache}/train.feats.npy")
n_mels = stats.shape[1]
l1 = {"copy-runs": [], "copy-unit-means": [], "utterance-mean": []}
for _, _, off, n in meta["utterances"]:
    mel = torch.from_numpy(feats[UPSAMPLE * off : UPSAMPLE * (off + n), -n_mels:].copy()).float()
    ids = torch.from_numpy(units[off : off + n].astype(np.int64))
    z = (mel - stats[0]) / stats[1]

    def dist(x):
        return ((x - stats[0]) / stats[1] - z).abs().mean().item()

    l1["copy-runs"].append(dist(run_means(mel, ids, UPSAMPLE)))
    l1["copy-unit-means"].append(dist(unit_means(mel, ids, UPSAMPLE)))
    l1["utterance-mean"].append(dist(mel.mean(0, keepdim=True).expand_as(mel)))
write_json_atomic(out, {"utterances": len(meta["utterances"]),
                        "mel_l1": {k: round(float(np.mean(v)), 4) for k, v in l1.items()}})
print(open(out).read())
PY
for name in overfit overfit620; do
  report "docs/vocoder-$name-fit" resynth --quiet --vocoder "$E/$name" --data "$FIT.tsv" \
    --per-voice 0 --methods hn-f0,copy-hn --asr whisper
  compare resynth "$BUNDLE_FIT" "docs/vocoder-$name-fit" "docs/vocoder-$name-vs-bundled-fit"
done
[ -f "$BUNDLE.json" ] || resynth_heldout "$BUNDLE" phone-vocoder hn-f0
for name in overfit overfit620; do
  resynth_heldout "docs/vocoder-$name-heldout" "$E/$name" hn-f0
  compare resynth "$BUNDLE" "docs/vocoder-$name-heldout" "docs/vocoder-$name-vs-bundled-heldout"
done
# new sentences of the 62's own voices (the test split's utterances of those voices): is what the
# decoder learned by heart the utterances, or their voices?
[ -f "$E/voices-test.wrd" ] || "$PY" - "$CORPUS" "$FIT.spk" "$E/voices-test" <<'PY'
import sys

from speechlm.data.manifest import read_manifest, write_manifest

corpus, spk, out = sys.argv[1:]
voices = {line.strip() for line in open(spk) if line.strip()}
root = open(f"{corpus}/test.tsv").readline().strip()
write_manifest(f"{out}.tsv", root,
               [u for u in read_manifest(f"{corpus}/test.tsv") if u.speaker in voices])
PY
report docs/vocoder-overfit-voices-bundled-test resynth --quiet --vocoder phone-vocoder \
  --data "$E/voices-test.tsv" --per-voice 0 --methods hn-f0 --asr whisper
for name in overfit overfit620; do
  report "docs/vocoder-$name-voices-test" resynth --quiet --vocoder "$E/$name" \
    --data "$E/voices-test.tsv" --per-voice 0 --methods hn-f0 --asr whisper
  compare resynth docs/vocoder-overfit-voices-bundled-test "docs/vocoder-$name-voices-test" \
    "docs/vocoder-$name-vs-bundled-voices-test"
done
