"""``speechlm tokenize``: speech -> units, per file or over a manifest (resumable)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from speechlm.errors import SpeechLMError
from speechlm.tokenizer import DEFAULT_TOKENIZER

log = logging.getLogger("speechlm")


def cmd_tokenize(args: argparse.Namespace) -> int:
    from speechlm.tokenizer import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    if args.manifest:
        return _tokenize_manifest(args, tok)
    if not args.files:
        raise SpeechLMError("give audio files to tokenize, or --manifest TSV")
    if args.output:
        raise SpeechLMError("-o/--output is for --manifest mode; single files print to stdout")
    from speechlm.units import format_ids, to_record

    for f in args.files:
        units = tok.tokenize_file(f, dedup=args.dedup)
        if args.format == "json":
            print(json.dumps(to_record(units, name=str(f))), flush=True)
        elif args.durations and units.durations is not None:
            print(f"{format_ids(units.ids)}\t{format_ids(units.durations)}", flush=True)
        else:
            print(format_ids(units.ids), flush=True)
    return 0


def _tokenize_manifest(args: argparse.Namespace, tok) -> int:
    import os

    from tqdm import tqdm

    from speechlm.data.manifest import read_manifest, resolve_manifest, shard
    from speechlm.units import unit_line

    if args.files:
        raise SpeechLMError("give either audio files or --manifest, not both")
    if not args.output:
        raise SpeechLMError("--manifest needs -o OUT (the 'name|u1 u2 ...' unit file)")
    items = shard(read_manifest(resolve_manifest(args.manifest, args.corpus)), args.shard)
    out = Path(args.output)
    if out.exists() and not args.force:
        raise SpeechLMError(f"{out} exists; pass --force to overwrite")
    partial = out.with_name(out.name + ".partial")
    done: set[str] = set()
    if partial.exists():  # resume: keep complete lines, drop a torn last line
        text = partial.read_text(encoding="utf-8")
        keep = text[: text.rfind("\n") + 1]
        partial.write_text(keep, encoding="utf-8")
        done = {ln.split("|", 1)[0] for ln in keep.splitlines()}
        if done:
            log.info("resuming %s: %d of %d utterances already done", out, len(done), len(items))
    with partial.open("a", encoding="utf-8") as f:
        for u in tqdm(items, desc="tokenize", unit="utt", disable=args.quiet):
            if u.name in done:
                continue
            units = tok.tokenize_file(u.path, dedup=args.dedup)
            f.write(unit_line(u.name, units.ids) + "\n")
            f.flush()
    os.replace(partial, out)
    log.info("wrote %d utterances to %s", len(items), out)
    return 0


def register(sub, add_parser) -> None:
    """``tokenize``."""
    t = add_parser(sub, "tokenize", help="speech -> units (one line per file on stdout)",
                       description="Turn speech into discrete units. Prints one line of "
                       "space-separated unit ids per file, or with --manifest writes a "
                       "'name|u1 u2 ...' unit file (resumable).")
    t.add_argument("files", nargs="*", help="audio files (wav, flac, ogg, ...)")
    t.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                   help="bundled tokenizer name or tokenizer directory")
    t.add_argument("--dedup", action="store_true", help="collapse repeated units")
    t.add_argument("--durations", action="store_true",
                   help="with --dedup, add a TAB and the run length of each unit")
    t.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: ids per line; json: one versioned units record per line")
    t.add_argument("--manifest", help="batch mode: manifest .tsv or split name of --corpus")
    t.add_argument("--corpus", default="data/corpus", help="corpus directory for split names")
    t.add_argument("--shard", default="0/1", help="batch mode: process shard I of N")
    t.add_argument("-o", "--output", help="batch mode: output unit file")
    t.add_argument("--force", action="store_true", help="overwrite an existing output")
    t.set_defaults(func=cmd_tokenize)
