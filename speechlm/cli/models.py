"""``speechlm models``: list the bundled models."""

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


def register(sub, add_parser) -> None:
    """``models``."""
    m = add_parser(sub, "models", help="list the bundled models (name, kind, unit space; "
                   "'default' marks the default model's three stages)")
    m.set_defaults(func=cmd_models)
