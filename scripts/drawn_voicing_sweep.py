"""Sweep the drawn-F0 path's voicing decision of a vocoder against the source's voicing.

Where `continue` and `vocode` speak without a source F0, the vocoder voices a frame when its
first pass's voicing probability exceeds ``drawn_voicing_threshold`` and then takes the majority
over ``VOICING_SMOOTH`` frames (``speechlm.vocoder``'s constant, read at call time). This script
resynthesizes the utterances of a manifest without their F0 and compares the output's voicing
(10 ms frames) with the source's (pyworld DIO + StoneMask) at each threshold x smoothing width:
frame error, frames wrongly unvoiced / voiced, and voicing changes per second beside the
source's. No judge, no audio: ~2 s per utterance and setting on 2 cores.

    .venv/bin/python scripts/drawn_voicing_sweep.py --data outputs/f0-spread-eval/valid40.tsv \
        --thresholds 0.35 --widths 1,5,9,15,21 --json docs/vocoder-drawn-voicing-smooth-valid.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import soundfile as sf
import torch

import speechlm.vocoder as vocoder_module
from speechlm import SpeechLM
from speechlm.audio import f0_track
from speechlm.io import atomic_path


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a manifest .tsv (root line, then relpath)")
    ap.add_argument("--model", default="default", help="SpeechLM.load's model (default: bundled)")
    ap.add_argument("--thresholds", type=floats, default=[0.35])
    ap.add_argument("--widths", type=floats, default=[1, 5, 9, 15, 21])
    ap.add_argument("--seed", type=int, default=0, help="the drawn contour's seed")
    ap.add_argument("--json", help="write the table here too")
    args = ap.parse_args(argv)
    lines = open(args.data).read().splitlines() if os.path.isfile(args.data) else []
    root, rows = (lines[0], [r for r in lines[1:] if r.strip()]) if lines else ("", [])
    if not rows:
        print(f"error: {args.data}: not a manifest with utterances (a root line, then "
              "relpath<TAB>samples lines)", file=sys.stderr)
        return 2
    m = SpeechLM.load() if args.model == "default" else SpeechLM.load(args.model)
    voc, tok = m.vocoder, m.tokenizer
    settings = [(t, int(w)) for t in args.thresholds for w in args.widths]
    counts = {s: np.zeros(4) for s in settings}  # frames, missed, false, changes
    src_frames = src_changes = 0.0
    for i, row in enumerate(rows):
        path = os.path.join(root, row.split("\t")[0])
        try:
            wav, sr = sf.read(path, dtype="float32")
        except (OSError, RuntimeError) as err:  # soundfile's LibsndfileError is a RuntimeError
            print(f"error: {path}: not readable audio ({err})", file=sys.stderr)
            return 2
        if wav.ndim != 1 or sr != tok.sample_rate:
            print(f"error: {path}: expected mono audio at {tok.sample_rate} Hz (the corpus's), "
                  f"got {wav.shape[1] if wav.ndim > 1 else 1} channel(s) at {sr} Hz",
                  file=sys.stderr)
            return 2
        units, voice = tok(path, dedup=True), voc.voice(torch.from_numpy(wav))
        src = f0_track(wav) > 0
        src_frames += len(src)
        src_changes += np.abs(np.diff(src.astype(int))).sum()
        for thr, width in settings:
            voc.set_drawn_voicing_threshold(thr)
            vocoder_module.VOICING_SMOOTH = width
            out = (voc.parameters_for(units, voice, seed=args.seed)["vuv"] > 0.5).numpy()
            n = min(len(out), len(src))
            o, s = out[:n], src[:n]
            counts[thr, width] += [n, (~o & s).sum(), (o & ~s).sum(),
                                   np.abs(np.diff(o.astype(int))).sum()]
        print(f"{i + 1}/{len(rows)} {row.split(chr(9))[0]}", file=sys.stderr, flush=True)
    table = [{"threshold": t, "smooth_frames": w, "frame_error": round((c[1] + c[2]) / c[0], 4),
              "wrongly_unvoiced": round(c[1] / c[0], 4), "wrongly_voiced": round(c[2] / c[0], 4),
              "changes_per_s": round(c[3] / (c[0] / 100), 2)} for (t, w), c in counts.items()]
    result = {"data": args.data, "utterances": len(rows), "seed": args.seed,
              "source_changes_per_s": round(src_changes / (src_frames / 100), 2), "rows": table}
    print("threshold | smooth (10 ms frames) | frame error | wrongly unvoiced | wrongly voiced | "
          f"voicing changes / s (source: {result['source_changes_per_s']})")
    for r in table:
        print(" | ".join(str(r[k]) for k in ("threshold", "smooth_frames", "frame_error",
                                              "wrongly_unvoiced", "wrongly_voiced",
                                              "changes_per_s")))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
