#!/usr/bin/env bash
# Phone-rate units from an encoder that heard real speech (issues 14 and 16): a phone head on
# Whisper tiny.en's frozen audio encoder, its CTC phone string as units, and the bundled LM's
# recipe on them. make whisper-phone (~20 min of head training on 2 cores, ~8 min of units,
# ~10 min of tokenizer reports, ~30 min of LM training, then its probes):
# 1. the head (configs/encoder/whisper-phone-cpu.toml: 1.1M parameters over layer 4, frame
#    cross-entropy + CTC on the world corpus's alignments, augmented crops; Whisper is frozen)
#    -> outputs/encoder-whisper-phone/model;
# 2. its CTC tokenizer (--layer ctc: one-hot centroids, nothing fitted)
#    -> outputs/tokenizers/whisper-phone-ctc;
# 3. speechlm eval tokenizer, against the bundled whisper-k100 and phone-k100, on seen voices
#    (test), the held-out engines (heldout) and Allison's real prompts (their .phn from an
#    independent aligner) -> docs/tokenizer-whisper-phone.{md,json};
# 4. the bundled LM's recipe on those units (configs/lm/whisper-phone-cpu.toml; it tokenizes
#    the corpus first) and its probes on the held-out voices (docs/whisper-phone-lm), beside the
#    bundled whisper-lm's on the same probes (docs/switch-whisper-lm);
# 5. the bundled whisper-vocoder's recipe on those units (configs/vocoder/whisper-phone-cpu.toml,
#    ~40 min on one thread; its last weights in float16 -> outputs/vocoder-whisper-phone-eval/
#    whisper-phone), judged with the source F0 on Allison's 217 real prompts (Whisper and
#    pocketsphinx) and on the held-out engines, each paired with the same recipe on whisper-k100
#    units (docs/whisper-units-{allison,heldout}: make whisper-units; skipped without them).
# Every step is skipped when its output exists, and the training steps resume. Env: THREADS (the
# head's and the LM's torch threads: 2 and 1 when unset; the vocoder trains on one).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, train_exported, resynth_heldout,
#                                   compare, lm_probes
ENC=outputs/encoder-whisper-phone
TOK=outputs/tokenizers/whisper-phone-ctc
R=data/real
[ -f "$CORPUS/train.tsv" ] || { echo "whisper-phone: $CORPUS/train.tsv is missing: run make corpus-world HOURS=12.5" >&2; exit 2; }
[ -f "$R/allison/allison.tsv" ] || SL=$SL bash scripts/build_real_voice.sh
mkdir -p outputs docs
if [ ! -f "$TOK/config.json" ]; then
  $SL train encoder --config configs/encoder/whisper-phone-cpu.toml --data.corpus="$CORPUS" \
    --train.out="$ENC" --train.threads="${THREADS:-2}" > "$ENC.log" 2>&1
  $SL train tokenizer --quiet --features "$ENC/model" --layer ctc --out "$TOK" --force > /dev/null
fi
report docs/tokenizer-whisper-phone tokenizer --corpus "$CORPUS" --manifest test --manifest heldout \
  --manifest "$R/allison/allison.tsv" --tokenizer whisper-k100 --tokenizer phone-k100 \
  --tokenizer "$TOK" --max-utterances 200
lm_probes whisper-phone configs/lm/whisper-phone-cpu.toml
for f in docs/whisper-units-allison.json docs/whisper-units-heldout.json \
         data/vocoder/v2-phone-k100-8b1f9cc1/train.json; do
  [ -f "$f" ] || { echo "whisper-phone: $f is missing (make whisper-units): no vocoder step" >&2; exit 0; }
done
E=outputs/vocoder-whisper-phone-eval
mkdir -p "$E"
train_exported "$E" configs/vocoder/whisper-phone-cpu.toml whisper-phone --train.threads=1
report docs/whisper-phone-allison resynth --quiet --vocoder "$E/whisper-phone" --wav-dir "$R/allison" \
  --per-voice 0 --methods hn-f0 --asr whisper,pocketsphinx --reference-voices "$R/others"
compare resynth docs/whisper-units-allison docs/whisper-phone-allison docs/whisper-phone-compare-allison
resynth_heldout docs/whisper-phone-heldout "$E/whisper-phone" hn-f0
compare resynth docs/whisper-units-heldout docs/whisper-phone-heldout docs/whisper-phone-compare-heldout
echo "docs/tokenizer-whisper-phone.{json,md} docs/whisper-phone-lm.{json,md}" \
  "docs/whisper-phone-{allison,compare-allison,heldout,compare-heldout}.{json,md}"
