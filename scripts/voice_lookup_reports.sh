# make voice-lookup: how many words can one spectrum per unit carry, in the speaker's own voice,
# when the table comes from the voice's *other* utterances (none of it the utterance's own; make
# unit-runs' copy-unit-means read the utterance's own table, partly its own runs)? And how many
# more when the unit's neighbouring runs pick the spectrum? Copy synthesis through the bundled
# waveform stage with the source F0 (eval resynth --methods copy-voice-means,copy-voice-context;
# speechlm/eval/unit_lookup.py), Whisper, on the held-out-engine utterances of every held-out
# vocoder report (2 per voice; the 60 of 61 whose voice has another utterance in the held-out
# split, each voice's table pooled over its other utterances there, ~8), for:
#   - the bundled units (phone-k100): docs/vocoder-voice-lookup-heldout.*;
#   - K = 500 and 2,000 k-means over the same encoder's posteriors (fitted when absent, as make
#     unit-runs does): docs/vocoder-voice-lookup-phone-k{500,2000}-b6400-heldout.*;
#   - each finer codebook paired with the bundled units, utterance by utterance:
#     docs/vocoder-voice-lookup-k{500,2000}-vs-k100-heldout.*
#     (finer codebooks leave more units without an entry in so small a table: the reports give
#     the share of frames that fell back to the voice's mean frame).
# ~45 min on 2 cores; existing reports are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, CORPUS, report, resynth_heldout, posterior_tokenizer, compare
mkdir -p docs
METHODS=copy-voice-means,copy-voice-context
BASE=docs/vocoder-voice-lookup-heldout
resynth_heldout "$BASE" phone-vocoder "$METHODS"
for k in 500 2000; do
  tok=$(posterior_tokenizer "$k")
  stem="docs/vocoder-voice-lookup-$(basename "$tok")-heldout"
  resynth_heldout "$stem" phone-vocoder "$METHODS" --tokenizer "$tok"
  compare resynth "$BASE" "$stem" "docs/vocoder-voice-lookup-k$k-vs-k100-heldout"
done
# the same tables read by the reference phones (the 51 aligned utterances of make unit-oracle's
# manifest, 4 per voice; each voice's tables pooled over its aligned utterances, their units
# read by the phones: one spectrum per phone, or per phone between its neighbours):
# docs/vocoder-voice-lookup-phones-heldout.*
ALIGNED=outputs/unit-oracle/heldout-aligned.tsv
if [ -f "$ALIGNED" ]; then
  report docs/vocoder-voice-lookup-phones-heldout resynth --quiet --vocoder phone-vocoder \
    --corpus "$CORPUS" --data "$ALIGNED" --per-voice 4 --methods "$METHODS" --asr whisper \
    --unit-oracle phones
else
  echo "voice-lookup: $ALIGNED is missing (make unit-oracle): the phone tables are skipped" >&2
fi
