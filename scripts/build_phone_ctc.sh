#!/usr/bin/env bash
# Phone-rate units (issue 14's "make units at phone rate (CTC)"; issue 16's lever, see "The phone
# oracle" in docs/research/lm.md): the phone encoder's CTC head read greedily, each phone held until the
# next (speechlm train tokenizer --layer ctc; nothing fitted). Do an LM's probes rise when its units
# are the encoder's phone string instead of k-means clusters, and what does a vocoder make of them?
#   1. export the longer-trained encoder (RUN_MORE: scripts/build_phone_encoder_more.sh's run,
#      CTC weight 0.3) with its CTC head -> outputs/encoder-phone-ctc; its CTC tokenizer
#      -> outputs/tokenizers/phone-ctc
#   2. train it STEPS further with the CTC loss at full weight (ctc_weight 1.0, model.init)
#      -> outputs/encoder-phone-ctc2 and outputs/tokenizers/phone-ctc2
#   3. speechlm eval tokenizer: both against phone-k100, seen (test) and held-out voices
#      -> docs/tokenizer-phone-ctc.{md,json} (with the phone error rate of the units themselves)
#   4. the bundled LM's recipe (configs/lm/phone-cpu.toml) on each one's units of the 12.5 h
#      sample, scored on the aligned probe set of scripts/build_lm_phone_oracle.sh (with how each
#      voice's probe items are spelled) -> docs/lm-phone-ctc{,2}-aligned-probes.{md,json}
#   5. the bundled vocoder's recipe (configs/vocoder/phone-cpu.toml) on phone-ctc units, with the
#      bundled vocoder's waveform stage and speaker network (unpacked from
#      speechlm/pretrained/phone-vocoder: its int8 rows dequantized), judged like the bundled one
#      -> docs/vocoder-phone-ctc.{md,json}
# ~3 h on 2 cores (encoder ~45 min, each LM ~15 min, vocoder ~75 min on one core); every step
# resumes or is skipped when its output exists. Nothing bundled changes.
# Env: CORPUS (data/corpus-v2), RUN_MORE (outputs/encoder-phone-cont), STEPS (4000),
# PROBES (data/probes-aligned), PER_VOICE (2: held-out engines in the vocoder report).
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
PY=.venv/bin/python
CORPUS=${CORPUS:-data/corpus-v2}
RUN_MORE=${RUN_MORE:-outputs/encoder-phone-cont}
STEPS=${STEPS:-4000}
PROBES=${PROBES:-data/probes-aligned}
PER_VOICE=${PER_VOICE:-2}
export OMP_WAIT_POLICY=PASSIVE

[ -f "$RUN_MORE/state.safetensors" ] || RUN="$RUN_MORE" bash scripts/build_phone_encoder_more.sh
[ -f outputs/encoder-phone-ctc/config.json ] || $PY -c "
import sys
from speechlm.train.phone import export_state
export_state(sys.argv[1], 'outputs/encoder-phone-ctc')" "$RUN_MORE"
$SL train encoder --config configs/encoder/phone-cpu.toml --data.corpus="$CORPUS" \
  --model.init=outputs/encoder-phone-ctc --model.ctc_weight=1.0 --train.max_steps="$STEPS" \
  --train.warmup_steps=100 --train.lr=3e-4 --train.eval_interval=500 \
  --train.out=outputs/encoder-phone-ctc2
for t in ctc ctc2; do
  enc=outputs/encoder-phone-ctc; [ "$t" = ctc ] || enc=outputs/encoder-phone-ctc2/model
  [ -f "outputs/tokenizers/phone-$t/config.json" ] || $SL train tokenizer --features "$enc" \
    --layer ctc --out "outputs/tokenizers/phone-$t" --force
done

[ -f docs/tokenizer-phone-ctc.json ] || $SL eval tokenizer --corpus "$CORPUS" --manifest test \
  --manifest heldout --tokenizer phone-k100 --tokenizer outputs/tokenizers/phone-ctc \
  --tokenizer outputs/tokenizers/phone-ctc2 --max-utterances 200 \
  --json docs/tokenizer-phone-ctc.json --markdown docs/tokenizer-phone-ctc.md

[ -f "$PROBES/syntactic/pairs.tsv" ] || $SL eval build-probes --out "$PROBES" --corpus "$CORPUS" \
  --voices mbrola_us3,mbrola_us1,fest_slt_hts,flite_awb
for t in ctc ctc2; do
  $SL train lm --config configs/lm/phone-cpu.toml --data.corpus="$CORPUS" \
    --data.tokenizer="outputs/tokenizers/phone-$t" --data.units_dir="data/units/v2-phone-$t-dedup" \
    --data.frames_dir="data/units/v2-phone-$t-frames" --train.out="outputs/lm-phone-$t" \
    --train.threads=2 > "outputs/lm-phone-$t.log" 2>&1
  [ -f "docs/lm-phone-$t-aligned-probes.json" ] || $SL eval lm --model "outputs/lm-phone-$t/model" \
    --corpus "$CORPUS" --probes "$PROBES" --quiet --json "docs/lm-phone-$t-aligned-probes.json" \
    --markdown "docs/lm-phone-$t-aligned-probes.md"
done

# the vocoder: the bundled one's waveform stage and frozen speaker network, new unit embeddings
[ -f outputs/speaker-from-phone-vocoder/config.json ] || $PY -c "
from speechlm.speaker import SpeakerModel
from speechlm.vocoder import Vocoder
net = Vocoder.load('phone-vocoder').model.speaker.net
SpeakerModel(net, {'extracted_from': 'speechlm/pretrained/phone-vocoder (int8 rows, dequantized)'}
             ).save('outputs/speaker-from-phone-vocoder')"
OMP_NUM_THREADS=1 $SL train vocoder --config configs/vocoder/phone-cpu.toml --data.corpus="$CORPUS" \
  --data.tokenizer=outputs/tokenizers/phone-ctc --data.cache=data/vocoder/v2-phone-ctc \
  --data.waveform=speechlm/pretrained/phone-vocoder/waveform \
  --data.speaker=outputs/speaker-from-phone-vocoder --train.out=outputs/vocoder-phone-ctc \
  > outputs/vocoder-phone-ctc.log 2>&1
E=outputs/vocoder-eval
mkdir -p "$E"
run() {  # name vocoder split per_voice methods
  [ -f "$E/$1-$3.json" ] || $SL eval resynth --quiet --vocoder "$2" --corpus "$CORPUS" \
    --data "$3" --per-voice "$4" --methods "$5" --asr whisper --json "$E/$1-$3.json" \
    --markdown "$E/$1-$3.md"
}
run phone-vocoder phone-vocoder heldout "$PER_VOICE" hn-f0,hn,griffinlim,floor
run phone-ctc-vocoder outputs/vocoder-phone-ctc/model heldout "$PER_VOICE" hn-f0,hn
run phone-vocoder phone-vocoder test 1 hn-f0,hn
run phone-ctc-vocoder outputs/vocoder-phone-ctc/model test 1 hn-f0,hn
$PY - "$E" <<'PY'
import json, sys
e = sys.argv[1]
names = ("phone-ctc-vocoder", "phone-vocoder")
# the bundled vocoder's own reports are in docs/vocoder-phone-vocoder.json
out = {f"{names[0]}/{s}": json.load(open(f"{e}/{names[0]}-{s}.json")) for s in ("heldout", "test")}
json.dump(out, open("docs/vocoder-phone-ctc.json", "w"), indent=1)
with open("docs/vocoder-phone-ctc.md", "w") as f:
    f.write("Resynthesis from phone-rate CTC units (outputs/tokenizers/phone-ctc, the vocoder recipe\n"
            "of the bundled phone-vocoder retrained on them) against the bundled phone-vocoder\n"
            "(phone-k100 units), judged by Whisper tiny.en, Resemblyzer and DNSMOS next to the\n"
            "originals. Rebuilt by scripts/build_phone_ctc.sh.\n")
    for s, what in (("heldout", "held-out engines: voices no model here heard"),
                    ("test", "known identities, held-out sentences")):
        for v in names:
            f.write(f"\n## {v}, {what}\n\n" + open(f"{e}/{v}-{s}.md").read())
PY
