#!/usr/bin/env bash
# Does hearing real human voices teach the decoder an unheard real voice? make vocoder-real
# (~40 min of training on one thread, ~30 min of judging):
# 1. the French, Italian and Russian Asterisk prompts (three real speakers, every file: ~1,700
#    utterances; scripts/build_real_voice.sh fetches them) as data/real/train/<voice>/ with a
#    manifest, analysed with the bundled tokenizer (data/vocoder/real-train-phone-k100-8b1f9cc1)
#    and joined to the bundled vocoder's training cache
#    (data/vocoder/v2-real-phone-k100-8b1f9cc1; python -m speechlm.train.cache_pack merge);
# 2. configs/vocoder/phone-cpu-real.toml: make vocoder-grow's control recipe (the bundled
#    weights, 2,000 steps) on the joined cache, exported from its last weights with the bundled
#    settings (outputs/vocoder-real-eval/real);
# 3. judged with the source F0 on Allison Smith's 217 English prompts (a real voice no run
#    heard; the Spanish package is her too, so it is not among the training voices), paired with
#    the control (outputs/vocoder-grow-eval/grow-control, judged here on the same prompts) and
#    the bundle (docs/real-allison-resynth, make real-voice-reports); and on the held-out
#    engines, paired with the control's committed report.
# Every step is skipped when its output exists. Env: THREADS (1: the training's torch threads).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, train_exported, resynth_heldout, compare
. scripts/lib/real_voices.sh  # REAL_OTHERS
E=outputs/vocoder-real-eval
R=data/real
BASE_CACHE=data/vocoder/v2-phone-k100-8b1f9cc1
REAL_CACHE=data/vocoder/real-train-phone-k100-8b1f9cc1
JOINED=data/vocoder/v2-real-phone-k100-8b1f9cc1
CONTROL=docs/vocoder-grow-control-heldout
CONTROL_VOC=outputs/vocoder-grow-eval/grow-control
BUNDLE_REAL=docs/real-allison-resynth
for f in "$CONTROL.json" "$CONTROL_VOC/config.json" "$BASE_CACHE/train.json"; do
  [ -f "$f" ] || { echo "vocoder-real: $f is missing: run make vocoder-grow first" >&2; exit 2; }
done
mkdir -p "$E" docs
[ -f "$R/others/it_IT_m_Carlo/source.json" ] || SL=$SL bash scripts/build_real_voice.sh

# 1. the three real training voices, their manifest, their analysis, the joined cache
S=usr/share/asterisk/sounds
for v in $REAL_OTHERS; do
  name=${v#*/}
  [ -f "$R/train/$name/source.json" ] || $SL corpus real --quiet --format g722 \
    --sounds "$R/debs/asterisk-core-sounds-${v%%/*}/$S/$name" --out "$R/train/$name"
done
[ -f "$R/train/train.tsv" ] || "$PY" - "$R/train" <<'PY'
import sys
from pathlib import Path

import soundfile as sf

from speechlm.data.manifest import Utterance, write_manifest

root = Path(sys.argv[1]).resolve()
write_manifest(root / "train.tsv", root, [
    Utterance(p.relative_to(root).with_suffix("").as_posix(), p, sf.info(str(p)).frames,
              p.parent.name) for p in sorted(root.glob("*/*.wav"))])
PY
[ -f "$REAL_CACHE/train.json" ] || "$PY" - "$R/train" "$REAL_CACHE" <<'PY'
import sys

from speechlm.train.vocoder import DATA_DEFAULTS, build_cache

corpus, cache = sys.argv[1:]
d = {**DATA_DEFAULTS, "corpus": corpus, "cache": cache, "tokenizer": "phone-k100",
     "holdout_voices": [], "max_per_voice": 0, "jobs": 1}
build_cache(d, sp_dim=0, n_mels=80, splits=("train",), progress=False)
PY
"$PY" -m speechlm.train.cache_pack merge "$JOINED" "$BASE_CACHE" "$REAL_CACHE" > /dev/null

# 2. the control's recipe on the joined cache
train_exported "$E" configs/vocoder/phone-cpu-real.toml real --train.threads="${THREADS:-1}"

# 3. judged on the real voice and on the held-out engines, paired
REAL_ARGS=(--wav-dir "$R/allison" --per-voice 0 --methods hn-f0 --asr whisper
           --reference-voices "$R/others")
report docs/vocoder-real-allison resynth --quiet --vocoder "$E/real" "${REAL_ARGS[@]}"
report docs/vocoder-real-control-allison resynth --quiet --vocoder "$CONTROL_VOC" "${REAL_ARGS[@]}"
compare resynth docs/vocoder-real-control-allison docs/vocoder-real-allison \
  docs/vocoder-real-compare-allison
[ -f "$BUNDLE_REAL.json" ] && compare resynth "$BUNDLE_REAL" docs/vocoder-real-allison \
  docs/vocoder-real-vs-bundled-allison
resynth_heldout docs/vocoder-real-heldout "$E/real" hn-f0
compare resynth "$CONTROL" docs/vocoder-real-heldout docs/vocoder-real-compare-heldout
echo "docs/vocoder-real-*"
