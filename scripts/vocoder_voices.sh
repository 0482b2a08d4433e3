#!/usr/bin/env bash
# Does the decoder speak unheard voices better for having heard more voices, at equal data?
# (issue 15's WER on unheard voices; the planner's question whether building more training voices
# is worth it.) make vocoder-voices (~45 min of training with JOBS=3 on 2 cores, then ~25 min for
# the fourth run, ~20 min of judging):
# 1. the bundled vocoder's frozen speaker network exported as a speaker model
#    (outputs/speaker-bundle/model), so that runs from scratch share the bundle's speaker space;
# 2. configs/vocoder/phone-cpu-voices.toml, the bundled recipe from scratch, 1,500 steps, on 1,380
#    training utterances drawn from the identities of 6, 13 or all 27 base voices (each set holds
#    all five training engines; the 13 hold the 6, the 27 the 13), and from the 24 base voices
#    of every engine but MBROLA (so that the held-out MBROLA us3 is an unheard engine to it, as
#    Pico and Piper are to all), same seed, steps and schedule; each exported from its last
#    weights with the bundled settings (outputs/vocoder-voices-eval);
# 3. their loss on known voices and on the held-out engines, per base voice (vocoder_losses), with
#    the bundle and the units-shuffled baseline beside them -> docs/vocoder-voices-loss.json;
# 4. the 6- and 27-voice runs judged with the source F0 on the held-out engines (61 utterances)
#    and paired with each other -> docs/vocoder-voices-{6,27}-heldout.*,
#    docs/vocoder-voices-compare-heldout.*, and the 27 with the bundle ->
#    docs/vocoder-voices-vs-bundled-heldout.* (the no-MBROLA run is scored by its loss only);
# 5. the table -> docs/vocoder-voices.{json,md}.
# Every step is skipped when its output exists. Env: JOBS (1: the three trainings one after
# another; 3: side by side, one thread each), JUDGE (1; 0: losses only).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/heldout_reports.sh  # SL, PY, CORPUS, train_exported, vocoder_losses, resynth_heldout, compare
E=outputs/vocoder-voices-eval
V6='"flite_awb","fest_rab","mbrola_us1","rhvoice_bdl","espeak_us","espeak_gb_f4"'
V13="$V6"',"flite_slt","fest_slt_hts","mbrola_us2","rhvoice_clb","espeak_rp_f3","espeak_us_m3","flite_kal"'
NO_MBROLA='"espeak_029_m5","espeak_gb_f4","espeak_gb_m1","espeak_gbclan_m4","espeak_gbcwmd_m6","espeak_rp_f3","espeak_scotland_m2","espeak_us","espeak_us_f2","espeak_us_klatt2","espeak_us_m3","fest_don","fest_kal","fest_rab","fest_slt_hts","flite_awb","flite_kal","flite_kal16","flite_rms","flite_slt","rhvoice_alan","rhvoice_bdl","rhvoice_clb","rhvoice_slt"'
BUNDLE=docs/vocoder-source-f0-1-heldout
JOBS=${JOBS:-1}
case "$JOBS" in 1|3) ;; *) echo "vocoder-voices: JOBS must be 1 or 3, got '$JOBS'" >&2; exit 2 ;; esac
mkdir -p "$E" docs
[ -f outputs/speaker-bundle/model/config.json ] || "$PY" - <<'PY'
from speechlm.speaker import SpeakerModel
from speechlm.vocoder import Vocoder

v = Vocoder.load("phone-vocoder")
SpeakerModel(v.model.speaker.net, {"from": "the frozen speaker network inside phone-vocoder",
                                   "speaker": v.training.get("speaker")}).save(
    "outputs/speaker-bundle/model")
PY
train_voices() {  # N BASE_VOICES_TOML_LIST
  train_exported "$E" configs/vocoder/phone-cpu-voices.toml "voices$1" \
    "--data.base_voices=[$2]"
}
if [ "$JOBS" = 3 ]; then
  pids=()
  train_voices 6 "$V6" & pids+=($!)
  train_voices 13 "$V13" & pids+=($!)
  train_voices 27 "" & pids+=($!)
  for p in "${pids[@]}"; do wait "$p"; done
else
  train_voices 6 "$V6"
  train_voices 13 "$V13"
  train_voices 27 ""
fi
train_exported "$E" configs/vocoder/phone-cpu-voices.toml voices-nombrola \
  "--data.base_voices=[$NO_MBROLA]"
vocoder_losses docs/vocoder-voices-loss.json "$E/voices27" "$E/voices13" "$E/voices6" \
  "$E/voices-nombrola" phone-vocoder
if [ "${JUDGE:-1}" = 1 ]; then
  for n in 6 27; do
    resynth_heldout "docs/vocoder-voices-$n-heldout" "$E/voices$n" hn-f0
  done
  compare resynth docs/vocoder-voices-6-heldout docs/vocoder-voices-27-heldout \
    docs/vocoder-voices-compare-heldout
  [ -f "$BUNDLE.json" ] || resynth_heldout "$BUNDLE" phone-vocoder hn-f0
  compare resynth "$BUNDLE" docs/vocoder-voices-27-heldout docs/vocoder-voices-vs-bundled-heldout
fi
"$PY" - docs/vocoder-voices-loss.json docs/vocoder-voices "[$V6]" "[$V13]" <<'PY'
import json
import sys
from pathlib import Path

from speechlm.io import write_json_atomic, write_text_atomic

losses, stem, v6, v13 = sys.argv[1:]
v6, v13 = set(json.loads(v6)), set(json.loads(v13))
loss = json.load(open(losses))["loss"]
runs = [("6 base voices", "outputs/vocoder-voices-eval/voices6", "docs/vocoder-voices-6-heldout"),
        ("13 base voices", "outputs/vocoder-voices-eval/voices13", None),
        ("27 base voices (all)", "outputs/vocoder-voices-eval/voices27",
         "docs/vocoder-voices-27-heldout"),
        ("24 base voices: every engine but MBROLA", "outputs/vocoder-voices-eval/voices-nombrola",
         None)]
baseline = [k for k in loss if k.endswith("(units shuffled)")][0]
baseline_of = {p: n for n, p, _ in runs}.get(baseline.removesuffix(" (units shuffled)"))


def mean_over(by_voice, keep):  # crops of the base voices in keep, weighted by their count
    rows = [(l1, n) for v, (l1, n) in by_voice.items() if keep(v)]
    n = sum(c for _, c in rows)
    return (round(sum(l1 * c for l1, c in rows) / n, 4), n) if n else (None, 0)


def row(name, path, report):
    lv, lh = loss[path]["valid"], loss[path]["heldout"]
    out = {"decoder": name, "path": path,
           "valid": lv["mel"], "valid_static_matched": lv["mel_static_matched"],
           "valid_6": mean_over(lv["by_voice"], lambda v: v in v6),
           "valid_not_13": mean_over(lv["by_voice"], lambda v: v not in v13),
           "valid_mbrola": mean_over(lv["by_voice"], lambda v: v.startswith("mbrola_")),
           "heldout": lh["mel"], "heldout_static_matched": lh["mel_static_matched"],
           "heldout_by_voice": lh["by_voice"]}
    if report and Path(report + ".json").is_file():
        held = json.load(open(report + ".json"))["groups"]["held-out voices"]
        out.update(wer_heldout=held["hn-f0"]["wer"], wer_orig=held["orig"]["wer"],
                   n_judged=held["n"])
    return out


table = [row(*r) for r in runs]
table.append(row("bundle (all 27 voices, 5,887 utterances, warm-started, ~10x the steps)",
                 "phone-vocoder", "docs/vocoder-source-f0-1-heldout"))
table.append(row(f"trivial baseline: the {baseline_of} run, units shuffled", baseline, None))
heldout_voices = sorted(table[0]["heldout_by_voice"])
paired = {}
for key, f in (("27_vs_6", "docs/vocoder-voices-compare-heldout.json"),
               ("27_vs_bundle", "docs/vocoder-voices-vs-bundled-heldout.json")):
    if Path(f).is_file():
        paired[key] = json.load(open(f))
write_json_atomic(stem + ".json", {"losses": losses, "base_voices_6": sorted(v6),
                                   "base_voices_13": sorted(v13), "decoders": table,
                                   "paired_heldout": paired})


def f(x):
    return "-" if x is None else f"{x:.4f}"


lines = [
    "# Does the decoder speak unheard voices better for having heard more voices?", "",
    "`bash scripts/vocoder_voices.sh` (`make vocoder-voices`). The bundled recipe from scratch "
    "(the bundle's frozen speaker network and waveform stage), 1,500 steps, on 1,380 training "
    "utterances drawn from the identities of 6, 13 or 27 base voices (each set holds all five "
    "training engines), or of the 24 base voices of every engine but MBROLA. Log-mel L1 (normalized as trained) on the same 32 batches of 16 "
    "two-second crops (seed 1) of the bundled units; `static matched`: each crop's prediction "
    "moved to the crop's own long-term spectrum (the voice's average timbre given). "
    f"Known voices: the valid split (253 utterances of 216 identities); `valid, the 6`: its "
    f"crops of the 6 base voices every run heard; `valid, not in the 13`: of the 14 base voices "
    f"only the 27-voice run heard (and the no-MBROLA run, but for mbrola_en1). Held out: the "
    f"held-out engines (voices no model here heard; MBROLA us3's engine is known to every run "
    f"but the no-MBROLA one).",
    "", f"6 base voices: {', '.join(sorted(v6))}; the 13 add "
    f"{', '.join(sorted(v13 - v6))}.", "",
    "| decoder | valid | valid, static matched | valid, the 6 | valid, not in the 13 "
    "| valid, MBROLA us1 / us2 / en1 | held out "
    "| held out, static matched | " + " | ".join(f"held out: {v}" for v in heldout_voices)
    + " | held-out WER (originals) |",
    "|---" * (9 + len(heldout_voices)) + "|"]
for r in table:
    hv = r["heldout_by_voice"]
    wer = (f"{r['wer_heldout']:.3f} ({r['wer_orig']:.3f}), n={r['n_judged']}"
           if "wer_heldout" in r else "-")
    lines.append(
        f"| {r['decoder']} | {f(r['valid'])} | {f(r['valid_static_matched'])} | "
        f"{f(r['valid_6'][0])} | {f(r['valid_not_13'][0])} | {f(r['valid_mbrola'][0])} | "
        f"{f(r['heldout'])} | "
        f"{f(r['heldout_static_matched'])} | "
        + " | ".join(f"{hv[v][0]:.4f} ({hv[v][1]})" if v in hv else "-" for v in heldout_voices)
        + f" | {wer} |")
lines += ["", "Crops per held-out voice in brackets. The bundle is not a peer of the four runs "
          "(all voices, four times the utterances, warm-started and trained far longer): it is "
          "the calibration of what the recipe reaches, the shuffled units what it reaches "
          "without the content."]
if paired:
    lines += ["", "Paired on the held-out engines (source F0, Whisper): the 27 against the 6, "
              "`docs/vocoder-voices-compare-heldout.md`; the 27 against the bundle, "
              "`docs/vocoder-voices-vs-bundled-heldout.md`."]
write_text_atomic(stem + ".md", "\n".join(lines) + "\n")
print("\n".join(lines))
PY
