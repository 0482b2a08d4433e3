"""What every command module shares: the parser class, report output, the output-path
checks and the sampling flags."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechlm.errors import SpeechLMError


class Parser(argparse.ArgumentParser):
    """argparse that shows defaults and exits 2 with a one-line error."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--markdown", help="also write the markdown table here")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown",
                        help="what to print on stdout")


def emit_report(args: argparse.Namespace, report: dict, md: str) -> int:
    """Write ``--json`` / ``--markdown`` (atomically) and print the report in ``--format``."""
    from speechlm.io import write_json_atomic, write_text_atomic

    if args.json:
        write_json_atomic(args.json, report)
    if args.markdown:
        write_text_atomic(args.markdown, md + "\n")
    print(json.dumps(report, indent=2) if args.format == "json" else md)
    return 0


def out_path(out: str | None, default: Path, force: bool) -> Path:
    path = Path(out) if out else default
    if path.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise SpeechLMError(f"output {path}: use a .wav, .flac or .ogg name")
    if path.is_dir():
        raise SpeechLMError(f"output {path} is a directory; give a file name")
    return path


def need_input(path: str | Path, what: str = "input") -> Path:
    p = Path(path)
    if not p.exists():
        raise SpeechLMError(f"{what} not found: {p}")
    if p.is_dir():
        raise SpeechLMError(f"{what} {p} is a directory; give a file")
    return p


def refuse_existing(paths: list[Path], force: bool) -> None:
    if force:
        return
    for p in paths:
        if p.exists():
            raise SpeechLMError(f"{p} exists; pass --force to overwrite it")


def numbered(path: Path, i: int, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")


def sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=5.0, help="length of the continuation")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, help="keep the k most likely units")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 discourages recently generated units")
    p.add_argument("--seed", type=int, help="random seed; sample i uses seed + i")
