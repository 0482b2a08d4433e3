#!/usr/bin/env bash
# The harmonic-plus-noise waveform stage (speechlm/waveform.py), end to end on CPU:
#
#   1. train it: configs/vocoder/hn-cpu.toml (log-mel + F0 -> waveform on multi-resolution STFT
#      + mel losses, 4,000 utterances of the world corpus's train split; ~50 min on 2 cores)
#   2. judge copy synthesis on voices it never heard (the world corpus's held-out engines) and on
#      held-out sentences of known voices: the stage on the original's own log-mel + F0, against
#      WORLD analysis-synthesis and Griffin-Lim of the same log-mel, with Whisper WER, speaker
#      similarity and DNSMOS, each next to the original's -> docs/waveform-hn.md (+ .json)
#   3. speed against Griffin-Lim at the same frames -> docs/waveform-hn-bench.json
#
# Every step resumes or is skipped when its output exists: rerun after a kill. Needs the world
# corpus (make corpus-world, or HOURS=12 bash scripts/build_corpus.sh for a sample).
# Env: CORPUS (data/corpus-v2), RUN (outputs/waveform-hn-cpu), PER_VOICE (1).
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
RUN=${RUN:-outputs/waveform-hn-cpu}
PER_VOICE=${PER_VOICE:-1}
export OMP_WAIT_POLICY=PASSIVE

$SL train vocoder --config configs/vocoder/hn-cpu.toml --data.corpus="$CORPUS" --train.out="$RUN"

for split in heldout test; do
  [ -f "outputs/waveform-eval/$split.json" ] || $SL eval resynth --quiet --corpus "$CORPUS" \
    --data "$split" --per-voice "$PER_VOICE" --methods copy-hn,copy-world,copy-gl \
    --waveform "$RUN/model" --asr whisper --json "outputs/waveform-eval/$split.json" \
    --markdown "outputs/waveform-eval/$split.md"
done
{
  echo "Copy synthesis by the harmonic-plus-noise waveform stage ($RUN/model), WORLD"
  echo "analysis-synthesis and Griffin-Lim (32 iterations) of the same log-mel; Whisper tiny.en"
  echo "WER, Resemblyzer similarity to the original, DNSMOS; $PER_VOICE utterance(s) per voice."
  echo "Rebuilt by scripts/build_waveform.sh."
  for split in heldout test; do
    echo; echo "## $split"; echo; sed -n '1,/^$/p' "outputs/waveform-eval/$split.md"
  done
} > docs/waveform-hn.md
.venv/bin/python - "$RUN" <<'PY'
import json, sys
out = {s: json.load(open(f"outputs/waveform-eval/{s}.json"))["groups"] for s in ("heldout", "test")}
json.dump({"waveform": sys.argv[1] + "/model", "groups": out}, open("docs/waveform-hn.json", "w"),
          indent=1)
PY
.venv/bin/python benchmarks/bench_vocoder.py --waveform "$RUN/model" --data heldout \
  --corpus "$CORPUS" --utterances 20 --json docs/waveform-hn-bench.json
