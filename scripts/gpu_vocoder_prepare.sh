#!/usr/bin/env bash
# What scripts/gpu_vocoder_scale.sh needs carried to a lent GPU machine (make gpu-vocoder-prepare,
# ~5 min): the bundled phone-vocoder's training cache packed (python -m speechlm.train.cache_pack:
# log-mel quantized to STEP nats, time-differenced, LZMA) into data/vocoder/pack-gpu, and the
# wheels the device machine lacks (soundfile, cffi, pycparser for its Python 3.12) in .whl/.
# The bundle's validation loss on the cache and on the pack restored checks what the quantization
# costs (docs/vocoder-gpu-pack.json). The carry limit is 64 MiB in all: the script refuses a pack that does not leave room for the
# wheels (then raise STEP, or set MAX_UTTERANCES to a seeded draw of the training utterances).
# Env: STEP (0.2), MAX_UTTERANCES (0: all), CACHE (the bundled vocoder's cache,
# data/vocoder/v2-phone-k100-<its unit-space tag>; make default-units builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEP=${STEP:-0.2}
MAX_UTTERANCES=${MAX_UTTERANCES:-0}
PACK=data/vocoder/pack-gpu
TAG=$("$PY" -c "import json; print(json.load(open('speechlm/pretrained/phone-vocoder/config.json'))['unit_space'].rsplit('-', 1)[1])")
CACHE=${CACHE:-data/vocoder/v2-phone-k100-$TAG}
[ -f "$CACHE/train.json" ] || { echo "gpu-vocoder-prepare: $CACHE (the bundled vocoder's training cache) is missing: make default-units builds it" >&2; exit 2; }
if [ ! -f "$PACK/pack.json" ]; then
  rm -rf "$PACK.tmp"
  "$PY" -m speechlm.train.cache_pack pack "$CACHE" "$PACK.tmp" --step "$STEP" \
    --max-utterances "$MAX_UTTERANCES"
  mv "$PACK.tmp" "$PACK"
fi
if ! ls .whl/soundfile-*.whl > /dev/null 2>&1; then
  mkdir -p .whl
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform any -d .whl soundfile cffi pycparser
fi
# the pack checked: the bundle's loss terms on the same valid batches of the cache and of the
# pack restored (what the device's validation reads), with the pack's own description
[ -f docs/vocoder-gpu-pack.json ] || "$PY" - "$CACHE" "$PACK" docs/vocoder-gpu-pack.json <<'PY'
import json
import sys
import tempfile
from pathlib import Path

import torch

from speechlm.io import write_json_atomic
from speechlm.train.cache_pack import read_pack, unpack
from speechlm.train.vocoder import BATCH_DEFAULTS, CacheSplit, losses, make_batch
from speechlm.vocoder import Vocoder

cache, pack, out = sys.argv[1:]
model = Vocoder.load("phone-vocoder").model.float().eval()
t = dict(BATCH_DEFAULTS, batch_size=16, crop_frames=100)  # the CPU recipes' batches


def score(d):
    data, sums = CacheSplit(Path(d), "valid"), {}
    with torch.no_grad():
        for i in range(32):
            torch.manual_seed(0)
            for k, v in losses(model, make_batch(data, 1, i, t, 0, 0)).items():
                sums[k] = sums.get(k, 0.0) + float(v) / 32
    return {k: round(v, 5) for k, v in sums.items() if v}


with tempfile.TemporaryDirectory() as tmp:
    restored = unpack(Path(pack), Path(tmp) / "cache")
    res = {"pack": read_pack(Path(pack)), "bundle_valid_loss": {
        "cache": score(cache), "restored": score(restored)}}
write_json_atomic(out, res)
print(json.dumps(res["bundle_valid_loss"]))
PY
MB=$(du -cm --apparent-size "$PACK" .whl | tail -1 | cut -f1)
echo "gpu-vocoder-prepare: $PACK and .whl/: $MB MiB to carry (the limit is 64)"
[ "$MB" -lt 63 ] || { echo "gpu-vocoder-prepare: $MB MiB is over the carry limit: rm -rf $PACK and rerun with a larger STEP or MAX_UTTERANCES" >&2; exit 2; }
