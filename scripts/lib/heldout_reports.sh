# Shared steps of the vocoder judging scripts (scripts/*_reports.sh); sourced, not run, from the
# repo root. Each judges a copy of the bundled vocoder with one setting changed, on the world
# corpus's held-out engines (voices no model here heard), and pairs it with the other side.
# Env: CORPUS (data/corpus-v2); SL and PY (the venv's speechlm and python) for tests.
SL=${SL:-.venv/bin/speechlm}
PY=${PY:-.venv/bin/python}
CORPUS=${CORPUS:-data/corpus-v2}
export OMP_WAIT_POLICY=PASSIVE

# vocoder_copy OUT TIMBRE CONTRAST CUT_HZ ADAPT_STEPS: the bundled phone-vocoder with these
# settings (timbre_match, mel_contrast, voiced_noise_cut_hz, voice_adapt_steps) saved into OUT,
# float16 with the speaker encoder in int8, as bundled.
vocoder_copy() {
  "$PY" - "$@" <<'PY'
import sys

from speechlm.vocoder import Vocoder

out, timbre, contrast, cut, steps = sys.argv[1:6]
v = Vocoder.load("phone-vocoder").set_timbre_match(float(timbre))
v.set_mel_contrast(float(contrast)).set_voiced_noise_cut(float(cut))
v.set_voice_adapt_steps(int(steps)).save(out, half=True, int8=("speaker.",))
PY
}

# report STEM EVAL_ARGS...: `speechlm eval EVAL_ARGS... --json STEM.json --markdown STEM.md`,
# skipped when STEM.json exists (a rerun picks up where a killed one stopped).
report() {
  local stem=$1
  shift
  [ -f "$stem.json" ] || $SL eval "$@" --json "$stem.json" --markdown "$stem.md"
}

# resynth_heldout STEM VOCODER METHODS [ARGS...]: resynthesis of 2 utterances per held-out
# voice, judged with Whisper.
resynth_heldout() {
  local stem=$1 vocoder=$2 methods=$3
  shift 3
  report "$stem" resynth --quiet --vocoder "$vocoder" --corpus "$CORPUS" --data heldout \
    --per-voice 2 --methods "$methods" --asr whisper "$@"
}

# continue_heldout STEM VOCODER [ARGS...]: continuations of 1 prompt per held-out voice.
continue_heldout() {
  local stem=$1 vocoder=$2
  shift 2
  report "$stem" continue --quiet --vocoder "$vocoder" --corpus "$CORPUS" --data heldout \
    --per-voice 1 "$@"
}

# compare KIND BEFORE AFTER STEM: `eval compare-KIND` (resynth | continue) of two reports'
# stems, the paired differences into STEM.{json,md}; always rerun (seconds).
compare() {
  $SL eval "compare-$1" "$2.json" "$3.json" --json "$4.json" --markdown "$4.md"
}
