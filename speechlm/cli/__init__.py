"""The ``speechlm`` command line: thin wrappers over the library, one module per command group.

Each module (``tokenize``, ``corpus``, ``train``, ``generate``, ``evaluate``, ``speech``,
``models``) has a ``register(sub, add_parser)`` that adds its commands; :func:`main` builds the
parser from them. Data goes to stdout, logs and progress bars to stderr. A user error (missing
file, bad audio, bad flag) prints one line and exits with code 2; ``--verbose`` shows the
traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from speechlm.errors import SpeechLMError

log = logging.getLogger("speechlm")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (commands in the order of ``speechlm --help``)."""
    from speechlm import __version__
    from speechlm.cli import corpus, evaluate, generate, models, serve, speech, tokenize, train
    from speechlm.cli.common import Parser, number

    # -v / -q are accepted before or after the command
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", dest="verbose_sub",
                        help="debug logs and tracebacks")
    common.add_argument("-q", "--quiet", action="store_true", dest="quiet_sub",
                        help="no progress bars or info logs")
    p = Parser(prog="speechlm", description="Textless spoken language modelling toolkit.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    p.add_argument("--version", action="version", version=f"speechlm {__version__}")
    p.add_argument("--threads", type=number(int, 1, 1024),
                   help="torch threads (default: torch's choice, or $SPEECHLM_THREADS)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def add_parser(sp, *a, **kw):
        kw.setdefault("parents", [common])
        return sp.add_parser(*a, **kw)

    for group in (tokenize, corpus, train, generate, evaluate, speech, models, serve):
        group.register(sub, add_parser)
    return p


def _thread_policy() -> None:
    """Before torch is imported: OpenMP workers sleep when idle instead of spinning.

    With the default policy each of torch's worker threads busy-waits after every parallel
    region; next to another busy process on the same cores the spinning threads and the
    neighbour take turns and a 4 s run took 87 s. ``OMP_WAIT_POLICY=PASSIVE`` costs little
    alone for ``continue`` (benchmarks/bench_busy_neighbour.py) and keeps the run near its idle
    time under load; it does halve the phone tokenizer's speed on an idle machine
    (benchmarks/bench_phone_tokenize.py), where ``OMP_WAIT_POLICY=ACTIVE`` is the faster
    choice. A value the user set is kept; ``SPEECHLM_THREADS`` sets torch's thread count.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _set_threads(n: int | None) -> None:
    if n is None:
        env = os.environ.get("SPEECHLM_THREADS", "").strip()
        if not env:
            return
        if not env.isdigit() or not 1 <= int(env) <= 1024:
            raise SpeechLMError(f"SPEECHLM_THREADS={env!r}: give a whole number of threads >= 1")
        n = int(env)
    import torch

    torch.set_num_threads(n)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 user error, 130 interrupted)."""
    _thread_policy()
    args = None
    try:
        parser = build_parser()  # imports torch: Ctrl-C here is an interruption like any other
        args, extra = parser.parse_known_args(argv)
        overrides_ok = getattr(args, "accepts_overrides", False) and all(
            e.startswith("--") and "." in e.split("=")[0] and "=" in e for e in extra)
        if extra and not overrides_ok:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = extra
        args.quiet = args.quiet or getattr(args, "quiet_sub", False)
        args.verbose = args.verbose or getattr(args, "verbose_sub", False)
        level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
        _set_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except SpeechLMError as err:
        if args is not None and args.verbose:
            raise
        print(f"speechlm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("speechlm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


__all__ = ["build_parser", "main"]
