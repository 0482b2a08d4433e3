"""``speechlm models``: list the bundled models; ``speechlm adopt-units``: an LM or vocoder
copy that takes a new phone tokenizer's units."""

from __future__ import annotations

import argparse
import json


def cmd_models(args: argparse.Namespace) -> int:
    from speechlm.checkpoint import PRETRAINED_DIR, pretrained_names
    from speechlm.pipeline import DEFAULT_STAGES

    defaults = set(DEFAULT_STAGES.values())
    for name in pretrained_names():
        cfg = json.loads((PRETRAINED_DIR / name / "config.json").read_text())
        mark = "\tdefault" if name in defaults else ""  # the stages of the default model
        print(f"{name}\t{cfg['kind']}\t{cfg.get('unit_space', '')}{mark}")
    return 0


def cmd_adopt_units(args: argparse.Namespace) -> int:
    from speechlm.adopt import adopt_units

    r = adopt_units(args.stage, args.tokenizer, args.out, args.units_per_second)
    rate = "" if args.units_per_second is None else f"; {args.units_per_second} units/s"
    print(f"{args.out}: {r['files']} files; unit space {r['from']} -> {r['to']}{rate}")
    return 0


def register(sub, add_parser) -> None:
    """``models``, ``adopt-units``."""
    m = add_parser(sub, "models", help="list the bundled models (name, kind, unit space; "
                   "'default' marks the default model's three stages)")
    m.set_defaults(func=cmd_models)
    a = add_parser(sub, "adopt-units", help="copy an LM or vocoder to read another phone "
                   "tokenizer's units",
                   description="Write a copy of STAGE (an LM or a vocoder) that works in "
                   "TOKENIZER's unit space. Only for CTC phone tokenizers on both sides, whose "
                   "units are the phone classes themselves (a retrained phone head spells the "
                   "same symbols under a new id); k-means units are refused. The weights are "
                   "copied unchanged; config.json records the space it was trained on.")
    a.add_argument("stage", help="bundled LM or vocoder name, or its directory")
    a.add_argument("--tokenizer", required=True, help="the phone tokenizer whose units the copy "
                   "takes (name or directory)")
    a.add_argument("--out", required=True, help="the new directory (must not exist; or the "
                   "stage's own, to rewrite it in place)")
    a.add_argument("--units-per-second", type=float, default=None, metavar="R",
                   help="an LM only: its units per second of speech in the new units, measured "
                   "(what `generate --seconds` sizes a continuation by); the trained-on rate is "
                   "kept in config.json's adopted_units (default: keep the rate it has)")
    a.set_defaults(func=cmd_adopt_units)
