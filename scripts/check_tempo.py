"""Does a tempo fitted on the first half of an utterance predict how long its second half lasts?

For each utterance: tokenize it (deduplicated units with their durations), fit the tempo on the
first half's units with ``Vocoder.fit_tempo`` (and, for comparison, three other estimators),
predict the second half's frames with the duration model at that tempo, and compare with the
frames it really lasts (its final run left out: the recording's trailing silence). Reported:
the mean log ratio predicted / true (the bias: 0 is right, -0.10 is 10 % too short) and its
RMS, for real speech (Allison) and the world corpus's held-out engines, with tempo 1 (the
duration model as trained) as the baseline. Used by scripts/tempo_reports.sh.

    python scripts/check_tempo.py --real data/real/allison --corpus data/corpus-v2 \\
        --json docs/tempo-fit.json --markdown docs/tempo-fit.md
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from speechlm.audio import load_audio
from speechlm.io import write_text_atomic
from speechlm.pipeline import SpeechLM
from speechlm.vocoder import TEMPO_RANGE

METHODS = {
    "none": "tempo 1 (the duration model as trained)",
    "fit_tempo": "Vocoder.fit_tempo: frames / predicted frames, first run left out (shipped)",
    "all_runs": "the same with the first run",
    "median_log": "median of the per-unit log ratios",
    "no_long_runs": "ratio of sums without the longest 10 % of runs (pauses)",
}


def _interval(x: np.ndarray, seed: int = 0, n: int = 2000) -> list[float]:
    rng = np.random.default_rng(seed)
    means = [float(np.mean(rng.choice(x, len(x)))) for _ in range(n)]
    return [round(float(np.percentile(means, 2.5)), 3), round(float(np.percentile(means, 97.5)), 3)]


def check(m: SpeechLM, files: list[Path]) -> dict:
    voc = m.vocoder
    var = float((voc.training.get("valid_loss") or {}).get("dur", 0.0))
    errs: dict[str, list[float]] = {k: [] for k in METHODS}
    tempos = []
    for f in files:
        x = load_audio(f)
        u = m.tokenize(x)
        if len(u) < 2 * 10:
            continue
        voice = voc.voice(x)
        with torch.inference_mode():
            e = torch.exp(voc.model.duration(u.ids[None].long(), voice.vector[None])[0] + var / 2)
        d = u.durations.float()
        h = len(u) // 2
        first = dataclasses.replace(u, ids=u.ids[:h], durations=u.durations[:h])
        true_b = float(d[h:-1].sum())
        ea, da = e[:h], d[:h]
        keep = da[1:] <= torch.quantile(da[1:], 0.9)
        est = {"none": 1.0, "fit_tempo": voc.fit_tempo(first, voice),
               "all_runs": float(da.sum() / ea.sum()),
               "median_log": float(torch.exp(torch.median(torch.log(da[1:] / ea[1:])))),
               "no_long_runs": float(da[1:][keep].sum() / ea[1:][keep].sum())}
        tempos.append(est["fit_tempo"])
        for k, t in est.items():
            t = min(TEMPO_RANGE[1], max(TEMPO_RANGE[0], t))
            # the same rounding predict_durations uses, on the second half
            pred = float(voc.predict_durations(u.ids[h:-1], dataclasses.replace(voice, tempo=t)
                                               ).sum())
            errs[k].append(math.log(pred / true_b))
    out = {"utterances": len(tempos), "tempo_mean": round(float(np.mean(tempos)), 3),
           "tempo_range": [round(float(np.min(tempos)), 3), round(float(np.max(tempos)), 3)]}
    for k, v in errs.items():
        a = np.asarray(v)
        out[k] = {"bias": round(float(a.mean()), 3), "bias_ci": _interval(a),
                  "rms": round(float(np.sqrt(np.mean(a ** 2))), 3)}
    return out


def markdown(rep: dict) -> str:
    lines = ["# Tempo fitted on a prompt (scripts/check_tempo.py)", "",
             f"Model: `{rep['model']}`. Each utterance's first half fits the tempo, the duration "
             "model predicts the second half's frames (its final run left out) at that tempo; "
             "log(predicted / true frames): mean (bias, 95 % bootstrap interval) and RMS. "
             "Baseline: tempo 1.", ""]
    sets = [k for k in rep if isinstance(rep[k], dict) and "none" in rep[k]]
    lines += ["| method | " + " | ".join(f"{s}: bias | {s}: RMS" for s in sets) + " |",
              "|---|" + "---|---|" * len(sets)]
    for k, desc in METHODS.items():
        cells = []
        for s in sets:
            r = rep[s][k]
            cells += [f"{r['bias']:+.3f} [{r['bias_ci'][0]:+.3f}, {r['bias_ci'][1]:+.3f}]",
                      f"{r['rms']:.3f}"]
        lines.append(f"| {desc} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {s}: {rep[s]['utterances']} utterances; fitted tempo mean "
                     f"{rep[s]['tempo_mean']}, range {rep[s]['tempo_range']}" for s in sets]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", type=Path, required=True, help="a folder of real speech (wav)")
    ap.add_argument("--corpus", type=Path, required=True, help="the world corpus (heldout.tsv)")
    ap.add_argument("--model", default=None, help="a model directory (default: the bundled one)")
    ap.add_argument("--n", type=int, default=60, help="utterances per set")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--markdown", type=Path, required=True)
    args = ap.parse_args(argv)
    real = sorted(args.real.glob("*.wav"))[:args.n]
    tsv = args.corpus / "heldout.tsv"
    if not real or not tsv.is_file():
        print(f"check_tempo.py: no wav files in {args.real} or no {tsv}", file=sys.stderr)
        return 2
    lines = tsv.read_text().splitlines()
    root, rel = Path(lines[0]), [ln.split("\t")[0] for ln in lines[1:] if ln.strip()]
    held = [root / p for p in rel[::max(1, len(rel) // args.n)][:args.n]]
    m = SpeechLM.load(args.model)
    rep = {"model": args.model or "default", "real": check(m, real),
           "heldout_engines": check(m, held)}
    write_text_atomic(args.json, json.dumps(rep, indent=1) + "\n")
    write_text_atomic(args.markdown, markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
