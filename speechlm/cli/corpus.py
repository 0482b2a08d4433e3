"""``speechlm corpus synth``: build the synthetic training corpus."""

from __future__ import annotations

import argparse
import json

from speechlm.cli.common import Parser


def cmd_corpus_synth(args: argparse.Namespace) -> int:
    from speechlm.data.corpus import synth_corpus, voices_by_name

    voices = voices_by_name(args.voices.split(",")) if args.voices else None
    summary = synth_corpus(args.out, text=args.text, voices=voices, small=args.small,
                           limit=args.limit, jobs=args.jobs, progress=not args.quiet)
    print(json.dumps({k: summary[k] for k in ("hours", "speakers")} |
                     {s: {k: v for k, v in d.items() if k != "hours_per_speaker"}
                      for s, d in summary["splits"].items()}, indent=2))
    return 0


def register(sub, add_parser) -> None:
    """``corpus synth``."""
    c = add_parser(sub, "corpus", help="build a training corpus")
    csub = c.add_subparsers(dest="corpus_command", metavar="ACTION", parser_class=Parser)
    csub.required = True
    cs = add_parser(csub, "synth", help="synthesize a multi-speaker corpus from CMU ARCTIC text",
                         description="Synthesize the CMU ARCTIC prompts with flite, festival and "
                         "espeak-ng voices into DIR (resumable), with manifests per split.")
    cs.add_argument("--out", required=True, help="output directory")
    cs.add_argument("--text", help="prompt file (default: ../shared/data/cmuarctic.data)")
    cs.add_argument("--small", action="store_true", help="a ~3 minute corpus for tests")
    cs.add_argument("--voices", help="comma-separated voice names (default: all 15)")
    cs.add_argument("--limit", type=int, help="use only the first N sentences")
    cs.add_argument("--jobs", type=int, help="worker processes (default: all cores)")
    cs.set_defaults(func=cmd_corpus_synth)
