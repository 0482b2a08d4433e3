#!/usr/bin/env bash
# The bundled default's units with Whisper's linear layers in int8 (speechlm tokenize --precision
# int8; issue 14's speed target). make int8-units (~25 min on 2 cores; needs the world corpus and
# make real-voice):
# 1. speechlm eval tokenizer, whisper-phone at --precision fp32 (the paired base) and int8, on
#    seen voices (test), the held-out engines (heldout) and Allison's real prompts, 200
#    utterances each -> docs/tokenizer-wphone-int8.{md,json};
# 2. benchmarks/bench_whisper_tokenize.py on the default: float32 and int8 on the workers' path
#    against phone-k100, whisper-k100 and CTranslate2 in the same run, with the share of
#    deduplicated units int8 changes -> docs/bench-whisper-phone-int8.json, then the same under
#    the CLI's OMP_WAIT_POLICY=PASSIVE without the memory test -> docs/bench-whisper-phone-int8-
#    passive.json (an idle machine: run nothing else meanwhile).
# Each is kept when its JSON exists (a rerun picks up where a killed one stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/heldout_reports.sh
source scripts/lib/heldout_reports.sh
R=data/real
[ -f "$CORPUS/test.tsv" ] || { echo "int8-units: $CORPUS/test.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
[ -f "$R/allison/allison.tsv" ] || { echo "int8-units: $R/allison/allison.tsv is missing: run make real-voice" >&2; exit 2; }
mkdir -p docs
report docs/tokenizer-wphone-int8 tokenizer --quiet --corpus "$CORPUS" --manifest test \
  --manifest heldout --manifest "$R/allison/allison.tsv" --tokenizer whisper-phone \
  --precision fp32 --precision int8 --max-utterances 200
B=docs/bench-whisper-phone-int8
if [ -z "${SKIP_BENCH:-}" ]; then
  # OpenMP's default wait policy (the earlier bench runs), then the CLI's PASSIVE
  [ -f "$B.json" ] || env -u OMP_WAIT_POLICY "$PY" benchmarks/bench_whisper_tokenize.py \
    --tokenizer whisper-phone --files "$CORPUS/test.tsv" --json "$B.json"
  [ -f "$B-passive.json" ] || OMP_WAIT_POLICY=PASSIVE "$PY" benchmarks/bench_whisper_tokenize.py \
    --tokenizer whisper-phone --files "$CORPUS/test.tsv" --no-memory --json "$B-passive.json"
fi
echo "docs/tokenizer-wphone-int8.{json,md} $B.json $B-passive.json"
