# make unit-runs: can one static spectrum per unit run carry the words, and one per unit? Copy
# synthesis of the original's own log-mel averaged over each run of equal units (eval resynth
# --methods copy-runs) and over all frames of each unit in the utterance (copy-unit-means: one
# spectrum per unit whatever its context), through the bundled waveform stage with the source
# F0, beside copy-hn (the same without averaging); Whisper, on:
#   - the 61 held-out-engine utterances of every held-out vocoder report (2 per voice), runs of
#     the units as the bundled tokenizer reads them: docs/vocoder-unit-runs-heldout.*;
#   - the 51 of them with reference phones (make unit-oracle's manifest, 4 per voice), runs of
#     the reference phones (--unit-oracle phones): docs/vocoder-phone-runs-heldout.*.
#   - the 61 again, runs of other units (copy synthesis reads any tokenizer): K = 500 and 2,000
#     k-means over the bundled encoder's posteriors, band-limited at 6400 Hz as the bundled
#     units (fitted here when absent, ~3-6 min each, as scripts/vocoder_warm_start.sh fits
#     K = 500), and the former MFCC units (mfcc-k100): docs/vocoder-unit-runs-<units>-heldout.*.
# ~45 min on 2 cores; existing reports are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, report, resynth_heldout
mkdir -p docs
ALIGNED=outputs/unit-oracle/heldout-aligned.tsv
[ -f "$ALIGNED" ] || { echo "unit-runs: $ALIGNED is missing: run make unit-oracle first" >&2; exit 2; }
resynth_heldout docs/vocoder-unit-runs-heldout phone-vocoder copy-hn,copy-runs,copy-unit-means
report docs/vocoder-phone-runs-heldout resynth --quiet --vocoder phone-vocoder --corpus "$CORPUS" \
  --data "$ALIGNED" --per-voice 4 --methods copy-hn,copy-runs,copy-unit-means --asr whisper \
  --unit-oracle phones
for tok in "$(posterior_tokenizer 500)" "$(posterior_tokenizer 2000)" mfcc-k100; do
  resynth_heldout "docs/vocoder-unit-runs-$(basename "$tok")-heldout" phone-vocoder \
    copy-runs,copy-unit-means --tokenizer "$tok"
done
