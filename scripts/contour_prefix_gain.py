"""What a known F0 prefix is worth to an intonation model that reads one: on the analysed
corpus's valid split (held-out sentences of known voices), batches whose every row knows the F0
of a random prefix (as in training, ``train.prefix_share = 1``), the model's cross-entropy and
mean-z correlation over the frames after the prefix, with the prefix given and with it hidden
(the same model, the same targets: z-scored over the prefix). The difference is what the prompt's
F0 tells the model about the rest. Then, with ``--base`` (a model that reads units only, such as
the bundled one), both on batches with no prefix (the drawn path of resynthesis, where nothing
is known; targets z-scored over the utterance, as both were trained): does reading a prefix
cost the model anything where there is none?

    .venv/bin/python scripts/contour_prefix_gain.py outputs/contour-prompt/model \
        --cache data/vocoder/v2-wphone-ctc --json OUT.json

Exit 2 with one line: a missing model or cache, or a model that reads no prefix.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def prefix_gain(model_dir: str, cache: str, batches: int = 40, seed: int = 0,
                base: str | None = None) -> dict:
    """``{"given": {"ce", "corr"}, "hidden": {...}, "gain_ce": hidden - given, "gain_corr",
    "no_prefix": {"model": {...}, "base": {...}}}`` (means over the batches)."""
    import torch

    from speechlm.errors import SpeechLMError
    from speechlm.prosody import ContourModel
    from speechlm.train.analysed import CacheSplit
    from speechlm.train.contour import contour_losses, load_config, make_batch

    m = ContourModel.load(model_dir)
    if not m.reads_prefix:
        raise SpeechLMError(f"{model_dir}: the model reads no known prefix (known_prefix false)")
    data = CacheSplit(Path(cache), "valid")
    t = {**load_config("configs/vocoder/contour-prompt-cpu.toml")["train"], "prefix_share": 1.0}
    sums: dict[str, list[float]] = {"given": [], "hidden": [], "none": [], "base": []}
    other = ContourModel.load(base) if base else None
    with torch.no_grad():
        for i in range(batches):
            b = make_batch(data, 10**6 + seed, i, t, m.model.cfg.bins, known_prefix=True)
            for name, batch in (("given", b),
                                ("hidden", {k: v for k, v in b.items() if k != "known"})):
                lo = contour_losses(m.model, batch)
                sums[name].append((float(lo["total"]), float(lo["corr"])))
            if other is not None:
                plain = make_batch(data, 10**6 + seed, i, {**t, "prefix_share": 0.0},
                                   m.model.cfg.bins)
                for name, net in (("none", m.model), ("base", other.model)):
                    lo = contour_losses(net, plain)
                    sums[name].append((float(lo["total"]), float(lo["corr"])))

    def mean(rows):
        return {"ce": round(sum(r[0] for r in rows) / len(rows), 4),
                "corr": round(sum(r[1] for r in rows) / len(rows), 4)} if rows else None

    out = {"model": model_dir, "cache": cache, "split": "valid", "batches": batches,
           "given": mean(sums["given"]), "hidden": mean(sums["hidden"]),
           "no_prefix": {"model": mean(sums["none"]), "base": mean(sums["base"]),
                         "base_model": base}}
    out["gain_ce"] = round(out["hidden"]["ce"] - out["given"]["ce"], 4)
    out["gain_corr"] = round(out["given"]["corr"] - out["hidden"]["corr"], 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a contour model directory trained with known_prefix")
    ap.add_argument("--cache", default="data/vocoder/v2-wphone-ctc")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--base", help="a units-only contour model scored on the same frames")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args()
    from speechlm.errors import SpeechLMError
    from speechlm.io import write_json_atomic

    try:
        if not (Path(args.cache) / "valid.json").exists():
            raise SpeechLMError(f"{args.cache}: no analysed valid split (valid.json)")
        out = prefix_gain(args.model, args.cache, args.batches, base=args.base)
    except SpeechLMError as err:
        print(f"contour_prefix_gain: {err}", file=sys.stderr)
        return 2
    if args.json:
        write_json_atomic(Path(args.json), out)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
