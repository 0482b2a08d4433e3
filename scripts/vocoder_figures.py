"""Spectrograms of original, new and old resynthesis side by side (README, issue 15).

For the first held-out utterance of each of three engines no model here heard (the world
corpus's ``heldout`` split), draw the original over its resynthesis by the bundled vocoder (with
the source F0, and with F0 sampled as for LM output) and by the former default (the WORLD
``unit-vocoder`` on ``mfcc-k100`` units; ``bash scripts/restore_baselines.sh`` restores it), into
``docs/figures/vocoder-<voice>.png``::

    .venv/bin/python scripts/vocoder_figures.py [--corpus data/corpus-v2] [--out docs/figures]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="data/corpus-v2")
    ap.add_argument("--out", default="docs/figures")
    ap.add_argument("--vocoder", default="phone-vocoder")
    ap.add_argument("--old", default="outputs/baselines/unit-vocoder")
    ap.add_argument("--engines", default="mbrola_us3,pico_us,piper_joe")
    args = ap.parse_args()

    from speechlm.audio import f0_track, load_audio
    from speechlm.data.manifest import read_manifest, resolve_manifest
    from speechlm.eval.figures import plot_spectrograms
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import Vocoder

    new, old = Vocoder.load(args.vocoder), Vocoder.load(args.old)
    tok_new = Tokenizer.load(new.training["tokenizer"])
    tok_old = Tokenizer.load(old.training.get("tokenizer") or "mfcc-k100")
    items = read_manifest(resolve_manifest("heldout", args.corpus))
    for engine in args.engines.split(","):
        it = next(u for u in items if (u.speaker or u.name.split("/")[0]) == engine)
        wav = load_audio(it.path)
        f0 = f0_track(wav.numpy())
        rows = [("original", wav),
                (f"{args.vocoder}, source F0", new.decode(tok_new.tokenize_wave(wav),
                                                          new.voice(wav), f0=f0)),
                (f"{args.vocoder}, F0 sampled (as for LM output)",
                 new.decode(tok_new.tokenize_wave(wav), new.voice(wav), seed=0)),
                ("former default unit-vocoder (mfcc-k100, WORLD), source F0",
                 old.decode(tok_old.tokenize_wave(wav), old.voice(wav), f0=f0))]
        path = Path(args.out) / f"vocoder-{engine}.png"
        plot_spectrograms(path, rows, new.sample_rate,
                          title=f"{engine} (held-out engine): {it.name}")
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
