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

# bundled_reading DIR [PENALTY]: the bundled whisper-phone tokenizer read with CTC blank
# penalty PENALTY (default 0: the reading before the penalty) saved into DIR (the same head, so
# the same weights; the unit space names the penalty).
bundled_reading() {
  "$PY" - "$@" <<'PY'
import sys

from speechlm.tokenizer import Tokenizer

penalty = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
tok = Tokenizer.load("whisper-phone").with_reading(blank_penalty=penalty)
print(tok.save(sys.argv[1]), tok.unit_space)
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

# posterior_tokenizer K: outputs/tokenizers/phone-kK-b6400, k-means K over the bundled phone
# encoder's posteriors on 2,000 train utterances, band-limited at 6400 Hz as the bundled units;
# fitted when absent (~3-6 min). Prints its path.
posterior_tokenizer() {
  local t=outputs/tokenizers/phone-k$1-b6400
  [ -f "$t/config.json" ] || $SL train tokenizer --corpus "$CORPUS" --manifest train \
    --features speechlm/pretrained/phone-k100/encoder --layer posteriors --k "$1" \
    --max-utterances 2000 --max-frames 300000 --smoothing 0 --band-limit 6400 --out "$t" >&2
  echo "$t"
}

# continue_heldout STEM VOCODER [ARGS...]: continuations of 1 prompt per held-out voice.
continue_heldout() {
  local stem=$1 vocoder=$2
  shift 2
  report "$stem" continue --quiet --vocoder "$vocoder" --corpus "$CORPUS" --data heldout \
    --per-voice 1 "$@"
}

# stage_links DIR TOKENIZER LM VOCODER: DIR/{tokenizer,lm,vocoder} linked to those stages (names
# relative to the repo root): a model directory for `eval continue --model DIR`.
stage_links() {
  mkdir -p "$1"
  ln -sfn "$PWD/$2" "$1/tokenizer"
  ln -sfn "$PWD/$3" "$1/lm"
  ln -sfn "$PWD/$4" "$1/vocoder"
}

# wphone_model DIR VOCODER: the bundled whisper-phone tokenizer and LM with VOCODER
# (stage_links): the default model speaking through another vocoder.
wphone_model() {
  stage_links "$1" speechlm/pretrained/whisper-phone speechlm/pretrained/whisper-phone-lm "$2"
}

# units_resynth STEM VOCODER TOKENIZER: resynthesis with the source F0 through VOCODER reading
# TOKENIZER's units, judged with Whisper, on the held-out engines (STEM-heldout) and on Allison's
# 217 real prompts (STEM-allison; data/real, scripts/build_real_voice.sh).
units_resynth() {
  resynth_heldout "$1-heldout" "$2" hn-f0 --tokenizer "$3"
  report "$1-allison" resynth --quiet --vocoder "$2" --tokenizer "$3" \
    --wav-dir data/real/allison --per-voice 0 --methods hn-f0 --asr whisper \
    --reference-voices data/real/others
}

# allison_continue STEM MODEL: continuations of Allison's 217 real prompts by MODEL (a name or a
# model directory) -> STEM.
allison_continue() {
  report "$1" continue --quiet --model "$2" --wav-dir data/real/allison --per-voice 0 \
    --reference-voices data/real/others
}

# compare KIND BEFORE AFTER STEM: `eval compare-KIND` (resynth | continue) of two reports'
# stems, the paired differences into STEM.{json,md}; always rerun (seconds).
compare() {
  $SL eval "compare-$1" "$2.json" "$3.json" --json "$4.json" --markdown "$4.md"
}

# valid40 DIR: DIR/valid40.{tsv,wrd}, 40 utterances of the world corpus's valid split (held-out
# sentences of known voices), one per identity, drawn with a fixed seed: the subset on which the
# vocoder's settings are chosen before one held-out run (kept when it exists).
valid40() {
  mkdir -p "$1"
  [ -f "$1/valid40.wrd" ] || "$PY" - "$CORPUS" "$1/valid40" <<'PY'
import random
import sys

corpus, out = sys.argv[1:]
lines = open(f"{corpus}/valid.tsv").read().splitlines()
words = open(f"{corpus}/valid.wrd").read().splitlines()
root, rows = lines[0], lines[1:]
assert len(rows) == len(words), "valid.tsv and valid.wrd differ in length"
order = list(range(len(rows)))
random.Random(0).shuffle(order)
seen, pick = set(), []
for i in order:
    ident = rows[i].split("/")[0]
    if ident not in seen:
        seen.add(ident)
        pick.append(i)
    if len(pick) == 40:
        break
pick.sort()
with open(f"{out}.tsv.tmp", "w") as f:
    f.write(root + "\n" + "".join(rows[i] + "\n" for i in pick))
with open(f"{out}.wrd.tmp", "w") as f:
    f.write("".join(words[i] + "\n" for i in pick))
PY
  [ -f "$1/valid40.wrd" ] || { mv "$1/valid40.tsv.tmp" "$1/valid40.tsv"; mv "$1/valid40.wrd.tmp" "$1/valid40.wrd"; }
}

# vocoder_with OUT NAME VALUE: a bundled vocoder (VOCODER_BASE, default phone-vocoder) with one
# setting changed (Vocoder.set_NAME(VALUE), e.g. f0_spread 0.5), saved into OUT as bundled: the
# weight prefixes VOCODER_INT8 (default "speaker.") in int8, the rest in float16 (kept when it
# exists).
vocoder_with() {
  [ -d "$1" ] || "$PY" - "$@" "${VOCODER_BASE:-phone-vocoder}" ${VOCODER_INT8:-speaker.} <<'PY'
import sys

from speechlm.vocoder import Vocoder

out, name, value, base, *int8 = sys.argv[1:]
v = Vocoder.load(base)
getattr(v, f"set_{name}")(float(value)).save(out, half=True, int8=tuple(int8))
PY
}

# judge_vocoder STEM VOCODER: resynthesis (source F0 and drawn F0) judged with Whisper, on the
# held-out engines (2 utterances per voice) and on known identities' held-out sentences (1 per
# voice) -> STEM-heldout.{json,md} and STEM-test.{json,md}; each skipped when its JSON exists.
judge_vocoder() {
  local stem=$1 vocoder=$2
  report "$stem-heldout" resynth --quiet --vocoder "$vocoder" --corpus "$CORPUS" \
    --data heldout --per-voice 2 --methods hn-f0,hn --asr whisper
  report "$stem-test" resynth --quiet --vocoder "$vocoder" --corpus "$CORPUS" \
    --data test --per-voice 1 --methods hn-f0,hn --asr whisper
}

# export_last_vocoder RUN OUT [WHICH] [INT8]: a vocoder run's *last* weights (its model/ keeps
# those of the best total validation loss, where the F0 head's overfitting outweighs the log-mel's
# gains; WHICH=best exports those instead) with the bundled settings (timbre 0.5, contrast 1.2,
# voiced-noise cut 1000 Hz, drawn-F0 voicing threshold 0.35, source-F0 weight 1), float16 with
# the weights under the comma-separated prefixes INT8 (default: the speaker encoder, speaker.)
# in int8, into OUT.
export_last_vocoder() {
  "$PY" - "$1" "$2" "${3:-last}" ${4:+"$4"} <<'PY'
import json
import sys

from safetensors.torch import load_file

from speechlm.vocoder import Vocoder

run, out, which = sys.argv[1:4]
int8 = tuple(sys.argv[4].split(",")) if len(sys.argv) > 4 else ("speaker.",)
v = Vocoder.load(f"{run}/model")  # its architecture, training record and waveform stage
if which == "last":
    state = load_file(f"{run}/state.safetensors")  # the last weights
    v.model.load_state_dict({k[6:]: t for k, t in state.items()  # a critic's (critic.*) stays out
                             if k.startswith("model.") and not k.startswith("model.critic.")})
    last = [json.loads(x) for x in open(f"{run}/log.jsonl") if '"valid"' in x][-1]
    v.training.update(steps=last["step"], weights="last",
                      valid_loss={k: round(x, 5) for k, x in last["valid"].items()})
v.set_timbre_match(0.5).set_mel_contrast(1.2).set_voiced_noise_cut(1000)
v.set_drawn_voicing_threshold(0.35).set_source_f0_weight(1)
v.save(out, half=True, int8=int8)
print(v.training["steps"], v.training["valid_loss"])
PY
}

# vocoder_losses OUT VOCODER...: the training loss's terms (log-mel L1 normalized as trained, log-F0,
# voicing, duration) of each VOCODER (a name or directory, all on the bundled units) on the same
# 32 batches of 16 two-second crops (seed 1) of two caches of the bundled units: the bundled
# vocoder's valid split (known identities, held-out sentences) and the held-out engines (voices no
# model here heard, held-out sentences; analysed into data/vocoder/heldout-phone-k100-<tag> when
# missing, ~1 min), and the first VOCODER's with each crop's units shuffled (the trivial
# baseline) -> OUT (JSON; kept when it exists). Beside each loss term: "mel_static_matched", the
# log-mel L1 once each crop's prediction is moved to the crop's own long-term (mean) spectrum (what
# is left when the voice's average timbre is given: the dynamic part), and per cache "by_voice",
# the log-mel L1 of the crops of each base voice ({base: [L1, crops]}).
vocoder_losses() {
  local out=$1
  shift
  [ -f "$out" ] || "$PY" - "$CORPUS" "$out" "$@" <<'PY'
import json
import sys
from pathlib import Path

import torch

from speechlm.io import write_json_atomic
from speechlm.train.vocoder import (BATCH_DEFAULTS, CacheSplit, base_voice, batch_utterances,
                                    build_cache, load_config, losses, make_batch)
from speechlm.vocoder import Vocoder

corpus, out, *names = sys.argv[1:]
tag = json.load(open("speechlm/pretrained/phone-vocoder/config.json"))["unit_space"]
tag = tag.rsplit("-", 1)[1]
caches = {"valid": (Path(f"data/vocoder/v2-phone-k100-{tag}"), "valid"),
          "heldout": (Path(f"data/vocoder/heldout-phone-k100-{tag}"), "heldout")}
cfg = load_config("configs/vocoder/phone-cpu.toml", [f"--data.corpus={corpus}",
                  f"--data.cache={caches['heldout'][0]}"])
build_cache(cfg["data"], 0, 80, splits=("heldout",), progress=False)
t = dict(BATCH_DEFAULTS, batch_size=16, crop_frames=100)  # the CPU recipes' batches
splits = {k: CacheSplit(d, s) for k, (d, s) in caches.items()}
batches = {k: [make_batch(data, 1, i, t, 0, 0) for i in range(32)] for k, data in splits.items()}
voices = {k: [[base_voice(data.utts[j][1]) for j in batch_utterances(data, 1, i, 16)]
              for i in range(32)] for k, data in splits.items()}


def shuffled(b):  # the trivial baseline: each crop's units in a random order (seeded)
    g = torch.Generator().manual_seed(0)
    u = b["units"].clone()
    for row in u:
        row.copy_(row[torch.randperm(len(row), generator=g)])
    return {**b, "units": u}


res = {}
for name in names + [f"{names[0]} (units shuffled)"]:
    model = Vocoder.load(name.removesuffix(" (units shuffled)")).model.float().eval()
    res[name] = {}
    for k, bs in batches.items():
        sums, per_voice = {}, {}
        with torch.no_grad():
            for b, vs in zip(bs, voices[k]):
                torch.manual_seed(0)
                b = shuffled(b) if name.endswith("(units shuffled)") else b
                keep = {}
                for term, v in losses(model, b, keep).items():
                    sums[term] = sums.get(term, 0.0) + float(v) / len(bs)
                p, y, m = keep["mel"], keep["t_mel"], b["mask"]
                w, n = m[..., None], m.sum(1).clamp(min=1)[:, None, None]
                moved = p - (p * w).sum(1, keepdim=True) / n + (y * w).sum(1, keepdim=True) / n
                per_crop = [(x - y).abs().mean(-1).mul(m).sum(1) / m.sum(1).clamp(min=1)
                            for x in (p, moved)]
                sums["mel_static_matched"] = (sums.get("mel_static_matched", 0.0)
                                              + float((per_crop[1] * m.sum(1)).sum() / m.sum())
                                              / len(bs))
                for v, l1 in zip(vs, per_crop[0].tolist()):
                    per_voice.setdefault(v, []).append(l1)
        res[name][k] = {term: round(v, 5) for term, v in sums.items() if v}
        res[name][k]["by_voice"] = {v: [round(sum(x) / len(x), 5), len(x)]
                                    for v, x in sorted(per_voice.items())}
    print(name, {k: (v["mel"], v["mel_static_matched"]) for k, v in res[name].items()})
write_json_atomic(out, {"caches": {k: f"{d}/{s}" for k, (d, s) in caches.items()},
                        "batches": 32, "batch_size": 16, "crop_frames": 100, "seed": 1,
                        "loss": res})
PY
}

# train_exported E CONFIG NAME OVERRIDES...: `speechlm train vocoder --config CONFIG` into
# outputs/vocoder-NAME (its log: outputs/vocoder-NAME.log), then its last weights exported with
# the bundled settings into E/NAME (export_last_vocoder); skipped when E/NAME holds an export.
train_exported() {
  local e=$1 config=$2 name=$3
  shift 3
  [ -f "$e/$name/config.json" ] && return 0
  $SL train vocoder --config "$config" --data.corpus="$CORPUS" \
    --train.out="outputs/vocoder-$name" "$@" > "outputs/vocoder-$name.log" 2>&1
  export_last_vocoder "outputs/vocoder-$name" "$e/$name"
}

# export_lm_half RUN OUT: an LM run's best-on-valid weights in float16 into OUT (half the size in
# git; LanguageModel.load computes in float32). Prints its training record.
export_lm_half() {
  "$PY" - "$1" "$2" <<'PY'
import json
import sys

from speechlm import checkpoint

run, out = sys.argv[1:]
cfg, tensors, _ = checkpoint.load_stage(f"{run}/model", "lm")
cfg.pop("kind"), cfg.pop("format_version")
cfg["stored_dtype"] = "float16"
checkpoint.save_stage(out, "lm", cfg, {k: t.half() for k, t in tensors.items()})
print(json.dumps(cfg["training"]))
PY
}

# whisper_tokenizer K: outputs/tokenizers/whisper-l3-kK, k-means K over layer 3 of Whisper
# tiny.en's audio encoder (frame i taking Whisper's i + 1) on the 2,000 training utterances the
# bundled phone units were fitted on; fitted when absent (~1 min). Prints its path.
whisper_tokenizer() {
  local t=outputs/tokenizers/whisper-l3-k$1
  [ -f "$t/config.json" ] || $SL train tokenizer --quiet --corpus "$CORPUS" --manifest train \
    --features whisper --layer 3 --shift 1 --k "$1" --max-utterances 2000 --max-frames 300000 \
    --out "$t" > /dev/null
  echo "$t"
}

# heldout_probes DIR: the word and sentence probes spoken by the held-out voices (pico_us,
# piper_joe, mbrola_us3: no bundled model heard them) into DIR, built when missing.
heldout_probes() {
  [ -f "$1/syntactic/pairs.tsv" ] || $SL eval build-probes --out "$1" --corpus "$CORPUS" \
    --voices pico_us,piper_joe,mbrola_us3
}

# lm_probes NAME CONFIG: the LM recipe CONFIG (its train.out: outputs/lm-NAME) trained on the
# corpus (resumed; skipped once docs/NAME-lm.json exists), then its test perplexity and probes on
# the held-out voices (PROBES, data/probes-v2: built when absent) -> docs/NAME-lm.{json,md}.
# Env: THREADS (the training's torch threads; 1).
lm_probes() {
  local name=$1 config=$2
  local probes=${PROBES:-data/probes-v2}
  heldout_probes "$probes"
  [ -f "docs/$name-lm.json" ] || $SL train lm --config "$config" --data.corpus="$CORPUS" \
    --train.threads="${THREADS:-1}" > "outputs/lm-$name.log" 2>&1
  report "docs/$name-lm" lm --quiet --model "outputs/lm-$name/model" --corpus "$CORPUS" \
    --probes "$probes"
}

# wphone_spelling NAME TOK PROBES: the tokenizer TOK against the bundled whisper-phone, on test,
# the held-out engines and Allison's real prompts (100 utterances each; PNMI, ABX, UED, phone
# error rates) -> docs/NAME-tokenizer, and on the probe items (the held-out voices' isolated
# words and sentences, PROBES built when absent) -> docs/NAME-spelling.
wphone_spelling() {
  heldout_probes "$3"
  report "docs/$1-tokenizer" tokenizer --quiet --corpus "$CORPUS" \
    --tokenizer whisper-phone --tokenizer "$2" --manifest test --manifest heldout \
    --manifest data/real/allison/allison.tsv --max-utterances 100
  report "docs/$1-spelling" tokenizer --quiet --tokenizer whisper-phone \
    --tokenizer "$2" --manifest "$3/lexical/items.tsv" \
    --manifest "$3/syntactic/items.tsv" --no-ued
}

# wphone_lm NAME TOK LM BASE PROBES: the LM directory LM (the bundled LM adopted onto TOK's units)
# on the held-out voices' probes, against the bundled whisper-phone-lm on its own units
# (docs/BASE, made when absent) -> docs/NAME-lm and docs/NAME-lm-compare (units cached in
# data/units/v2-NAME-dedup).
wphone_lm() {
  heldout_probes "$5"
  report "docs/$4" lm --quiet --model whisper-phone-lm --corpus "$CORPUS" --probes "$5"
  report "docs/$1-lm" lm --quiet --model "$3" --tokenizer "$2" --corpus "$CORPUS" \
    --units-dir "data/units/v2-$1-dedup" --probes "$5"
  compare lm "docs/$4" "docs/$1-lm" "docs/$1-lm-compare"
}
