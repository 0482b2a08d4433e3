#!/usr/bin/env bash
# Build the 'world' corpus (docs/corpus.md) into data/corpus-v2 and refresh the card.
#   HOURS=2 bash scripts/build_corpus.sh         # a sample (hash-ordered subset)
#   HOURS=106 bash scripts/build_corpus.sh       # 110.8 h (103.8 h train): what make corpus-world
#                                                 # builds; 112 min on 2 shared cores, ~75 min idle
#   bash scripts/build_corpus.sh                  # the whole pool (~200 h; ~2.5 h on 2 idle cores)
#   SHARD=3/8 bash scripts/build_corpus.sh        # one shard of a cluster job; rerun without
#                                                 # SHARD to write the manifests and the card
# Resumable: rerun after an interruption. Niced so it shares the machine politely.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-data/corpus-v2}
args=(corpus synth --preset world --out "$OUT" --jobs "${JOBS:-$(nproc)}")
[ -n "${HOURS:-}" ] && args+=(--hours "$HOURS")
[ -n "${SHARD:-}" ] && args+=(--shard "$SHARD")
[ -z "${SHARD:-}" ] && args+=(--card docs/corpus.md)
OMP_WAIT_POLICY=PASSIVE nice -n 10 .venv/bin/speechlm "${args[@]}"
