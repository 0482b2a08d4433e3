"""``speechlm tokenize``: speech -> units, per file or over a manifest (resumable)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from speechlm.cli.common import add_input_args, apply_input_args, number
from speechlm.errors import SpeechLMError
from speechlm.tokenizer import DEFAULT_TOKENIZER, PRECISIONS

log = logging.getLogger("speechlm")


def cmd_tokenize(args: argparse.Namespace) -> int:
    from speechlm.tokenizer import Tokenizer

    tok = apply_input_args(Tokenizer.load(args.tokenizer).with_precision(args.precision),
                           args.warp, args.band_limit, args.speeds)
    labels = None
    if args.phones:
        labels = tok.unit_labels()
        if labels is None:
            raise SpeechLMError(f"--phones needs a tokenizer whose units are phones (a CTC phone "
                                f"tokenizer, such as the default {DEFAULT_TOKENIZER}); the units "
                                f"of {args.tokenizer} are k-means clusters")
        if args.manifest or args.format == "json":
            raise SpeechLMError("--phones prints text for single files; drop --manifest and "
                                "--format json")
    if args.manifest:
        return _tokenize_manifest(args, tok)
    if not args.files:
        raise SpeechLMError("give audio files to tokenize, or --manifest TSV")
    if args.output:
        raise SpeechLMError("-o/--output is for --manifest mode; single files print to stdout")
    from speechlm.units import format_ids, to_record

    for f, units in zip(args.files, tok.tokenize_files(args.files, args.dedup, args.workers)):
        if args.format == "json":
            print(json.dumps(to_record(units, name=str(f))), flush=True)
        else:
            ids = (" ".join(labels[i] for i in units.ids.tolist()) if labels is not None
                   else format_ids(units.ids))
            if args.durations and units.durations is not None:
                ids += f"\t{format_ids(units.durations)}"
            print(ids, flush=True)
    return 0


PARTIAL_FORMAT = 1  # version of the settings record kept beside OUT.partial


def _settings(args: argparse.Namespace, tok, manifest: Path) -> dict:
    """What a resumed run must share with the run that left the partial file: the same
    manifest (path and content), shard, tokenizer and dedup; any change gives other lines."""
    import hashlib

    return {"partial_format": PARTIAL_FORMAT, "manifest": os.path.realpath(manifest),
            "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "shard": args.shard, "unit_space": tok.unit_space, "dedup": bool(args.dedup),
            **({"precision": tok.precision} if tok.precision != "fp32" else {}),
            **({"warp": tok.warp} if tok.warp is not None else {}),
            **({"speeds": list(tok.speeds)} if tok.speeds is not None else {}),
            **({"band_limit": tok.band_limit} if tok.band_limit is not None else {})}


def _resume(partial: Path, meta: Path, settings: dict, names: list[str], force: bool) -> int:
    """How many leading utterances ``partial`` already holds (0: start afresh).

    A partial file is reused only when its settings record matches ``settings`` and its lines
    are exactly the first utterances of this run, in order; otherwise it is refused, or with
    ``force`` discarded.
    """
    from speechlm.io import write_json_atomic

    old = None
    if partial.exists():
        try:
            old = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        text = partial.read_text(encoding="utf-8")
        keep = text[: text.rfind("\n") + 1]  # a torn last line is dropped
        lines = keep.splitlines()
        match = len(lines) <= len(names) and all(
            ln.split("|", 1)[0] == name for ln, name in zip(lines, names))
        if match and old is None and not meta.exists():
            # a partial file from before settings records were kept: its lines are this run's
            log.warning("%s has no settings record; resuming it on the assumption that it was "
                        "made with these settings (--force starts afresh)", partial)
            if force:
                match = False
            else:
                write_json_atomic(meta, settings)
                old = settings
        if match and old == settings:
            partial.write_text(keep, encoding="utf-8")
            if lines:
                log.info("resuming %s: %d of %d utterances already done", partial, len(lines),
                         len(names))
            return len(lines)
        if not force:
            changed = ("its settings record is unreadable" if not isinstance(old, dict) else
                       "its lines do not match this run" if old == settings else
                       "settings changed: " + ", ".join(
                           f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items()
                           if old.get(k) != v))
            raise SpeechLMError(f"{partial} is left from another run ({changed}); rerun with "
                                "the same settings to resume it, or pass --force to start afresh")
        log.warning("discarding %s: it was made with other settings", partial)
        partial.unlink()
    write_json_atomic(meta, settings)
    partial.write_text("", encoding="utf-8")
    return 0


def _tokenize_manifest(args: argparse.Namespace, tok) -> int:
    from tqdm import tqdm

    from speechlm.cli.common import guard_outputs, need_input
    from speechlm.data.manifest import read_manifest, resolve_manifest, shard
    from speechlm.units import unit_line

    if args.files:
        raise SpeechLMError("give either audio files or --manifest, not both")
    if not args.output:
        raise SpeechLMError("--manifest needs -o OUT (the 'name|u1 u2 ...' unit file)")
    manifest = need_input(resolve_manifest(args.manifest, args.corpus), "--manifest")
    items = shard(read_manifest(manifest), args.shard)
    out = Path(args.output)
    partial = out.with_name(out.name + ".partial")
    meta = out.with_name(out.name + ".partial.json")
    inputs = {"--manifest": manifest, **{f"audio {u.path}": u.path for u in items}}
    guard_outputs({"-o": out}, inputs, args.force)
    guard_outputs({"-o (partial)": partial, "-o (partial settings)": meta}, inputs, force=True)
    done = _resume(partial, meta, _settings(args, tok, manifest), [u.name for u in items],
                   args.force)
    todo = items[done:]
    with partial.open("a", encoding="utf-8") as f:
        results = tok.tokenize_files([u.path for u in todo], args.dedup, args.workers)
        for u, units in tqdm(zip(todo, results), desc="tokenize", unit="utt",
                             disable=args.quiet, initial=done, total=len(items)):
            f.write(unit_line(u.name, units.ids) + "\n")
            f.flush()
    os.replace(partial, out)
    meta.unlink(missing_ok=True)
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
    t.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16: the encoder under bfloat16 autocast (1-2%% of frames get another "
                   "unit); int8: the encoder network's linear layers in int8 (about 2x the "
                   "speed on a CPU with AVX-512 VNNI; ~3%% of deduplicated units change). "
                   "Measure the speed on your CPU with benchmarks/bench_whisper_tokenize.py")
    add_input_args(t)
    t.add_argument("--workers", type=number(int, 1, 1024), default=None,
                   help="files (and chunks of long files) encoded at once, each on one core "
                   "(default: the torch thread count, --threads); 1: one at a time, every "
                   "operator on all threads")
    t.add_argument("--durations", action="store_true",
                   help="with --dedup, add a TAB and the run length of each unit")
    t.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: ids per line; json: one versioned units record per line")
    t.add_argument("--phones", action="store_true",
                   help="print each unit's phone (ARPAbet) instead of its id: for a tokenizer "
                   "whose units are a CTC phone string, such as the default; with --dedup, the "
                   "phone string it read")
    t.add_argument("--manifest", help="batch mode: manifest .tsv or split name of --corpus")
    t.add_argument("--corpus", default="data/corpus", help="corpus directory for split names")
    t.add_argument("--shard", default="0/1", help="batch mode: process shard I of N")
    t.add_argument("-o", "--output", help="batch mode: output unit file")
    t.add_argument("--force", action="store_true", help="overwrite an existing output")
    t.set_defaults(func=cmd_tokenize)
