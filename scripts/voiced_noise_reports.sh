#!/usr/bin/env bash
# Judge the waveform stage's voiced-noise cut (voiced_noise_cut_hz in the vocoder's config.json:
# the harmonic-plus-noise stage mutes its noise filter below that many Hz in voiced frames)
# against the same vocoder without it, on voices no model here heard: resynthesis of the world
# corpus's held-out engines (eval resynth --data heldout --per-voice 2, source F0 and drawn F0)
# and continuations of their prompts (eval continue --data heldout --per-voice 1), then the
# paired differences. The side without it is scripts/contrast_reports.sh's "12" reports (the
# bundled settings before the cut: timbre 0.5, contrast 1.2), which this script runs first when
# they are missing. Writes docs/vocoder-voiced-noise-{1000,compare}.* and
# docs/continue-voiced-noise-{1000,compare}.*, and the waveform stage's copy synthesis (the
# original's own log-mel + F0, no units: its ceiling) without and with the cut,
# docs/vocoder-voiced-noise-copy-{0,1000}.* (~25 min on 2 cores). Needs the world corpus.
# Env: CORPUS (data/corpus-v2), CUT (Hz, default 1000: the "1000" files).
set -euo pipefail
cd "$(dirname "$0")/.."
SL=.venv/bin/speechlm
CORPUS=${CORPUS:-data/corpus-v2}
CUT=${CUT:-1000}
export OMP_WAIT_POLICY=PASSIVE
[ -f docs/vocoder-contrast-12.json ] && [ -f docs/continue-contrast-12.json ] || \
  CORPUS="$CORPUS" bash scripts/contrast_reports.sh
E=outputs/voiced-noise-eval
mkdir -p "$E"
.venv/bin/python - "$E" "$CUT" <<'PY'
import sys
from speechlm.vocoder import Vocoder

e, cut = sys.argv[1], float(sys.argv[2])
v = Vocoder.load("phone-vocoder").set_timbre_match(0.5).set_mel_contrast(1.2)
v.set_voice_adapt_steps(0)  # the settings of their time: no voice adaptation
v.set_voiced_noise_cut(cut).save(f"{e}/vocoder-{int(cut)}", half=True, int8=("speaker.",))
PY
V="$E/vocoder-$CUT"
[ -f "docs/vocoder-voiced-noise-$CUT.json" ] || $SL eval resynth --quiet --vocoder "$V" \
  --corpus "$CORPUS" --data heldout --per-voice 2 --methods hn-f0,hn --asr whisper \
  --json "docs/vocoder-voiced-noise-$CUT.json" --markdown "docs/vocoder-voiced-noise-$CUT.md"
[ -f "docs/continue-voiced-noise-$CUT.json" ] || $SL eval continue --quiet --vocoder "$V" \
  --corpus "$CORPUS" --data heldout --per-voice 1 \
  --json "docs/continue-voiced-noise-$CUT.json" --markdown "docs/continue-voiced-noise-$CUT.md"
for side in 0 "$CUT"; do
  [ "$side" = 0 ] && V0=outputs/contrast-eval/vocoder-12 || V0="$V"
  [ -f "docs/vocoder-voiced-noise-copy-$side.json" ] || $SL eval resynth --quiet --vocoder "$V0" \
    --corpus "$CORPUS" --data heldout --per-voice 2 --methods copy-hn --asr whisper \
    --json "docs/vocoder-voiced-noise-copy-$side.json" \
    --markdown "docs/vocoder-voiced-noise-copy-$side.md"
done
$SL eval compare-resynth docs/vocoder-contrast-12.json "docs/vocoder-voiced-noise-$CUT.json" \
  --json docs/vocoder-voiced-noise-compare.json --markdown docs/vocoder-voiced-noise-compare.md
$SL eval compare-continue docs/continue-contrast-12.json "docs/continue-voiced-noise-$CUT.json" \
  --json docs/continue-voiced-noise-compare.json --markdown docs/continue-voiced-noise-compare.md
