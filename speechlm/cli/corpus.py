"""``speechlm corpus synth``: build a synthetic training corpus (``world`` or ``arctic15``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechlm.cli.common import Parser


def cmd_corpus_synth(args: argparse.Namespace) -> int:
    if args.preset == "world":
        from speechlm.data.build import synth_world
        from speechlm.data.card import write_card

        voices = args.voices.split(",") if args.voices else None
        summary = synth_world(args.out, hours=args.hours, small=args.small, shard=args.shard,
                              jobs=args.jobs, voices=voices, text_pool_file=args.text_pool,
                              arctic_text=args.text, progress=not args.quiet)
        if not summary.get("complete"):
            print(json.dumps(summary))
            return 0
        if args.card:
            write_card(summary, Path(args.card))
        print(json.dumps({k: summary[k] for k in ("hours", "speakers", "aligned_share")} |
                         {s: {k: v for k, v in d.items() if k != "per_engine"}
                          for s, d in summary["splits"].items()}, indent=2))
        return 0
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
    cs = add_parser(csub, "synth", help="synthesize a multi-speaker corpus",
                         description="Synthesize a multi-speaker corpus into DIR (resumable, "
                         "deterministic), with manifests per split. 'arctic15': the CMU ARCTIC "
                         "prompts in 15 voices (the bundled models' corpus). 'world': a million "
                         "words in 248 voice identities of 7 engines (docs/corpus.md).")
    cs.add_argument("--out", required=True, help="output directory")
    cs.add_argument("--preset", choices=("arctic15", "world"), default="arctic15",
                    help="which corpus to build")
    cs.add_argument("--text", help="ARCTIC prompt file (default: ../shared/data/cmuarctic.data)")
    cs.add_argument("--small", action="store_true", help="a corpus of a few minutes for tests")
    cs.add_argument("--voices", help="comma-separated voice names (arctic15: voices; world: "
                    "base voices; default: all)")
    cs.add_argument("--limit", type=int, help="arctic15: use only the first N sentences")
    cs.add_argument("--hours", type=float, help="world: about this many hours of train "
                    "(a hash-ordered subset of the full corpus; default: everything)")
    cs.add_argument("--shard", help="world: synthesize only shard I/N (0-based); run again "
                    "without --shard to write the manifests")
    cs.add_argument("--text-pool", help="world: a file of sentences to use instead of the "
                    "Debian text sources")
    cs.add_argument("--card", help="world: write the corpus card (markdown) here")
    cs.add_argument("--jobs", type=int, help="worker processes (default: all cores)")
    cs.set_defaults(func=cmd_corpus_synth)
