"""``speechlm serve``: the local web page and JSON API (needs the ``serve`` extra)."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from speechlm.cli.common import number
from speechlm.errors import SpeechLMError

LOOPBACK = ("127.0.0.1", "localhost")
MAX_CONNECTIONS = 64  # open connections uvicorn serves at once; past it, a plain 503


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as err:
        raise SpeechLMError(f"cannot listen on {host}:{port}: {err.strerror or err}; pick "
                            "another --port (or --port 0 for any free one)") from None


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise SpeechLMError(f"speechlm serve needs the serve extra ({err.name} is missing): "
                            "pip install -e '.[serve]'") from None
    import torch

    from speechlm.serve.app import ServeConfig, build_engine, create_app

    threads_set = getattr(args, "threads", None) is not None \
        or os.environ.get("SPEECHLM_THREADS", "").strip()
    if not threads_set:
        # one model job at a time; on a few shared cores one torch thread is fastest (a 5 s
        # continuation: 1.7 s with 1 thread, 9 s with 2 next to a busy neighbour)
        torch.set_num_threads(1)
    cfg = ServeConfig(max_upload_bytes=int(args.max_upload_mb * 2**20),
                      max_audio_seconds=args.max_audio_seconds, max_pending=args.max_pending,
                      max_samples=args.max_samples,
                      allowed_hosts=LOOPBACK if args.host in LOOPBACK else None)
    sock = _listen(args.host, args.port)  # before the model loads: a busy port fails at once
    try:
        engine = build_engine(args.model, judges=not args.no_judges, config=cfg)
        app = create_app(engine, cfg)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        if args.host not in LOOPBACK and args.host != "::1":
            print(f"speechlm: warning: listening on {args.host}: anyone who can reach this "
                  "machine can use the model", file=sys.stderr)
        print(f"speechlm: serving on http://{shown}:{port}/ (Ctrl-C to stop)", file=sys.stderr,
              flush=True)
        config = uvicorn.Config(app, log_level="warning" if args.quiet else "info",
                                access_log=not args.quiet, limit_concurrency=MAX_CONNECTIONS,
                                timeout_keep_alive=5, log_config=None)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def register(sub, add_parser) -> None:
    """``serve``."""
    s = add_parser(sub, "serve", help="a local web page and JSON API: record, continue, listen",
                   description="Serve a web page (and the JSON API behind it) to record or "
                   "upload speech, see its units, continue it, resynthesize it and convert its "
                   "voice. One process; the model is loaded once; jobs run one at a time from "
                   "a bounded queue.")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (127.0.0.1: this machine only)")
    s.add_argument("--port", type=number(int, 0, 65535), default=8000,
                   help="TCP port (0: any free port)")
    s.add_argument("--model", default="default",
                   help="'default' (bundled) or a directory with tokenizer/, lm/, vocoder/")
    s.add_argument("--max-pending", type=number(int, 1, 64), default=4,
                   help="model jobs waiting + running; past it requests get 503 'busy, retry'")
    s.add_argument("--max-upload-mb", type=number(float, 0, 1024, lo_open=True), default=16.0,
                   help="largest request body (MB)")
    s.add_argument("--max-audio-seconds", type=number(float, 0, 3600, lo_open=True),
                   default=60.0, help="longest uploaded recording")
    s.add_argument("--max-samples", type=number(int, 1, 32), default=4,
                   help="most continuations per request")
    s.add_argument("--no-judges", action="store_true",
                   help="do not transcribe or score outputs even if the eval extra is installed")
    s.set_defaults(func=cmd_serve)
