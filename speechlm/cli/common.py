"""What every command module shares: the parser class, report output, the output-path
checks and the sampling flags."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from speechlm.errors import SpeechLMError


class Parser(argparse.ArgumentParser):
    """argparse that shows defaults and exits 2 with a one-line error."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _get_values(self, action, arg_strings):
        # argparse drops a '--' value ("--seconds=--" would parse as []): give it to the type
        if action.nargs is None and action.option_strings and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


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
    """``path`` as a readable file (a regular file, a pipe or a device), or a one-line error."""
    from speechlm.io import stat_input

    p = Path(path)
    stat_input(p, what, SpeechLMError)
    if not os.access(p, os.R_OK):
        raise SpeechLMError(f"{what} {p} is not readable (check its permissions)")
    return p


def refuse_existing(paths: list[Path], force: bool) -> None:
    if force:
        return
    for p in paths:
        if p.exists():
            raise SpeechLMError(f"{p} exists; pass --force to overwrite it")


def _file_id(p: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(p)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def guard_outputs(outputs: dict[str, Path], inputs: dict[str, Path | None],
                  force: bool) -> None:
    """The one check every command runs on its outputs *before* any work.

    Each output must not be one of the inputs (even with ``--force``: that would destroy the
    input), must not be another output of the same run, must not exist unless ``force``, must not
    be a directory, and its folder must be creatable and writable. Outputs and inputs are named
    by what they are (``{"-o": path, "--units-out": path}``, ``{"the prompt": path}``) so the
    message says which flag to change. Inputs are compared by real path and by inode (hard
    links), each stat'ed once.

    Raises:
        SpeechLMError: the first problem found, in one line.
    """
    by_path: dict[str, str] = {}
    by_inode: dict[tuple[int, int], str] = {}
    for in_what, inp in inputs.items():
        if inp is None:
            continue
        by_path.setdefault(os.path.realpath(inp), in_what)
        fid = _file_id(Path(inp))
        if fid is not None:
            by_inode.setdefault(fid, in_what)
    seen: dict[str, str] = {}
    for what, out in outputs.items():
        out = Path(out)
        key = os.path.realpath(out)
        in_what = by_path.get(key) or by_inode.get(_file_id(out) or (-1, -1))
        if in_what:
            raise SpeechLMError(f"output {out} ({what}) is also {in_what}; writing it would "
                                "destroy the input: choose another output name")
        if key in seen:
            raise SpeechLMError(f"output {out} is written twice (by {seen[key]} and {what}); "
                                "choose different names")
        seen[key] = what
        if out.is_dir():
            raise SpeechLMError(f"output {out} ({what}) is a directory; give a file name")
        if out.exists() and not force:
            raise SpeechLMError(f"{out} exists; pass --force to overwrite it")
        folder = out.parent
        while not folder.exists() and folder != folder.parent:  # the folder that will hold it
            folder = folder.parent
        if folder.exists() and not folder.is_dir():
            raise SpeechLMError(f"cannot write {out} ({what}): {folder} is not a directory")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SpeechLMError(f"cannot write {out} ({what}): {folder} is not writable; "
                                "choose another folder or fix its permissions")


def numbered(path: Path, i: int, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")


# --------------------------------------------------------------------- numeric flags
# Every numeric flag is parsed by one of these: the value must be finite and in range, and
# argparse names the flag in its one-line error ("argument --seconds: ..."), exit code 2.

SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # seeds a torch.Generator takes as given
MAX_SECONDS = 600.0  # the longest continuation a command samples (the LM context is shorter)
MAX_SAMPLES = 1000  # --num-samples


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def number(kind: type = float, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False, extra: str = ""):
    """An argparse ``type=`` that accepts a finite ``kind`` in ``[lo, hi]`` (open ends with
    ``lo_open`` / ``hi_open``) and otherwise raises an error argparse turns into
    ``argument --flag: ...`` and exit code 2."""
    if lo is not None and hi is not None:
        rng = (f"{'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}")
        want = f"in {rng}"
    elif lo is not None:
        want = f"{'>' if lo_open else '>='} {_fmt(lo)}"
    elif hi is not None:
        want = f"{'<' if hi_open else '<='} {_fmt(hi)}"
    else:
        want = "finite"
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            v = kind(text.strip())
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {noun} {want}, got {text!r}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number {want}, got {text!r}")
        if lo is not None and (v < lo or (lo_open and v == lo)) or \
                hi is not None and (v > hi or (hi_open and v == hi)):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}{extra}")
        return v

    parse.__name__ = kind.__name__  # argparse's "invalid int value" fallback names the type
    return parse


def ngram_size(text: str) -> int:
    """``--no-repeat-ngram``: 0 (off) or >= 2 (1 would forbid any unit from recurring)."""
    v = number(int, 0, 64)(text)
    if v == 1:
        raise argparse.ArgumentTypeError("must be 0 (off) or >= 2: with 1 no unit could ever "
                                         "recur, which speech needs")
    return v


def sampling_args(p: argparse.ArgumentParser, seconds_help: str = "length of the continuation",
                  seed_help: str = "random seed; sample i uses seed + i") -> None:
    """The sampling flags ``continue`` and ``generate-units`` share."""
    p.add_argument("--seconds", type=number(float, 0, MAX_SECONDS, lo_open=True), default=5.0,
                   help=seconds_help)
    p.add_argument("--temperature", type=number(float, 0, 100), default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=number(int, 1), help="keep the k most likely units")
    p.add_argument("--top-p", type=number(float, 0, 1, lo_open=True),
                   help="nucleus sampling mass")
    p.add_argument("--repetition-penalty", type=number(float, 0, 100, lo_open=True), default=1.0,
                   help="> 1 discourages recently generated units")
    p.add_argument("--seed", type=number(int, SEED_MIN, SEED_MAX), help=seed_help)
    p.add_argument("--lm-weights", choices=("native", "native-int8", "int8", "fp32"),
                   help="the LM's decoder: native (the decode loop in C, float32; the default "
                   "where a C compiler builds it), native-int8 (the C loop on int8 matrices), "
                   "int8 (torch, per-channel scales, bfloat16 activations) or fp32 (torch)")


def check_seed_range(seed: int | None, num_samples: int) -> None:
    """Sample ``i`` uses ``seed + i``: all of them must be valid seeds."""
    if seed is not None and seed + num_samples - 1 > SEED_MAX:
        raise SpeechLMError(f"--seed {seed} + --num-samples {num_samples} runs past the largest "
                            f"seed ({SEED_MAX}); give a smaller --seed")


def warp_value(text: str):
    """``--warp``: ``auto``, ``none`` or a factor (:func:`speechlm.ssl.phone.parse_warp`)."""
    from speechlm.ssl.phone import parse_warp

    try:
        return parse_warp(text)
    except SpeechLMError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def speeds_value(text: str):
    """``--speeds``: ``none`` or speed factors (:func:`speechlm.ssl.phone.parse_speeds`)."""
    from speechlm.ssl.phone import parse_speeds

    try:
        return parse_speeds(text) or ()  # (): off, as against an absent flag
    except SpeechLMError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def band_limit_value(text: str) -> float:
    """``--band-limit``: a cut-off in Hz in [1000, 8000), or ``none`` (0.0: the full band, as
    against an absent flag, which keeps the tokenizer's own)."""
    if text == "none":
        return 0.0
    return number(float, 1000, 8000, hi_open=True, extra=" (or none)")(text)


WARP_HELP = ("vocal-tract length normalisation of a phone encoder's input: 'auto' picks for "
             "each file (each minute of a long one) the frequency warp (0.80-1.20) under which "
             "the encoder is most certain (9 encoder passes over its first 9 s); A: a fixed "
             "factor (< 1 for voices with high formants); default none. The unit space stays "
             "the same")
SPEEDS_HELP = ("a speed ensemble: the phone encoder reads the input at each of these speeds "
               "(resampled: spectrum and tempo change together) and its frame log-posteriors "
               "are averaged at the input's own frames, one encoder pass per speed "
               "(e.g. 0.85,1,1.15); default none. The unit space stays the same")
BAND_LIMIT_HELP = ("remove everything above HZ from the input before the tokenizer's encoder "
                   "(the brick-wall low-pass its training augmentation applies to some crops); "
                   "none: the full band; default: the tokenizer's own (the cut-off it was "
                   "fitted with, if any: 'train tokenizer --band-limit'). The unit space stays "
                   "the same")


def add_input_args(parser: argparse.ArgumentParser, repeat: bool = False) -> None:
    """``--warp``, ``--band-limit`` and ``--speeds``: the tokenizer's test-time input options (with
    ``repeat``, each may be given several times: every combination is evaluated)."""
    more = {"action": "append"} if repeat else {}
    again = " Repeat it to compare (the first setting is the paired base)." if repeat else ""
    parser.add_argument("--warp", type=warp_value, metavar="auto|none|A",
                        help=WARP_HELP + "." + again, **more)
    parser.add_argument("--band-limit", type=band_limit_value, metavar="HZ|none",
                        help=BAND_LIMIT_HELP + "." + again, **more)
    parser.add_argument("--speeds", type=speeds_value, metavar="S1,S2,...|none",
                        help=SPEEDS_HELP + "." + again, **more)


def apply_input_args(tok, warp=None, band_limit=None, speeds=None):
    """``tok`` with the test-time input options of :func:`add_input_args` (``band_limit``
    None: the tokenizer's own; 0: the full band; ``speeds`` None: the tokenizer's own, empty:
    off)."""
    tok = tok.with_warp(warp)
    if speeds is not None:
        tok = tok.with_speeds(speeds or None)
    return tok if band_limit is None else tok.with_band_limit(band_limit or None)
