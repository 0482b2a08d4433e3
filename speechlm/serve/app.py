"""The web application: the page, its static files and the JSON API (Starlette).

Every operation is a ``POST`` of a ``multipart/form-data`` form and answers JSON; with
``?stream=1`` it answers newline-delimited JSON events instead (``queued``, ``progress`` ...,
then ``result`` or ``error``), which is how the page shows progress. Output files are served
from memory at ``/api/results/KEY``. A refusal is ``{"error": MESSAGE, "code": CODE, "status":
HTTP_STATUS}``. The routes are listed in :data:`ROUTES_DOC` and in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from speechlm.cli.common import SEED_MAX, SEED_MIN, number
from speechlm.errors import AudioError, SpeechLMError
from speechlm.serve.engine import ContinueOptions, Engine
from speechlm.serve.jobs import Busy, Cancelled, Job, JobQueue, ResultStore
from speechlm.serve.uploads import HTTPError, Part, load_upload_async, parse_form, read_body

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
HEARTBEAT_S = 1.0  # a streamed job says where it stands at least this often
DISCONNECT_POLL_S = 0.25  # how often a waiting request checks that its client is still there


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """The server's limits (each one is in ``GET /api/info`` and in its refusal message)."""

    max_upload_bytes: int = 16 * 2**20  # one request's body
    max_audio_seconds: float = 60.0  # one uploaded recording
    max_pending: int = 4  # model jobs waiting + running; one more is "busy, retry" (503)
    max_samples: int = 4  # continuations per request
    max_seconds: float = 20.0  # length of one continuation (the LM's context may refuse less)
    upload_timeout_s: float = 30.0  # to receive one request's body
    result_bytes: int = 256 * 2**20  # output files kept in memory for download
    result_age_s: float = 3600.0  # ... and for at most this long
    allowed_hosts: tuple[str, ...] | None = None  # Host headers served (None: any)

    def public(self) -> dict[str, Any]:
        return {"max_upload_bytes": self.max_upload_bytes,
                "max_audio_seconds": self.max_audio_seconds, "max_pending": self.max_pending,
                "max_samples": self.max_samples, "max_seconds": self.max_seconds,
                "upload_timeout_s": self.upload_timeout_s, "result_age_s": self.result_age_s}


class Server:
    """What the routes share: the engine, the queue, the store and the private temp folder."""

    def __init__(self, engine: Engine, config: ServeConfig):
        self.engine, self.config = engine, config
        self.queue = JobQueue(config.max_pending)
        self.store = engine.store
        self.tmpdir = Path(tempfile.mkdtemp(prefix="speechlm-serve-"))  # mode 0700
        self.decode_lane = anyio.CapacityLimiter(1)  # uploads are decoded one at a time

    def close(self) -> None:
        self.queue.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# ------------------------------------------------------------------------------ fields

def _field(form: dict[str, Part], name: str, kind: type, lo=None, hi=None, default=None,
           lo_open: bool = False):
    part = form.get(name)
    if part is None or not part.text.strip():
        return default
    try:
        return number(kind, lo, hi, lo_open=lo_open)(part.text)
    except argparse.ArgumentTypeError as err:
        raise HTTPError(400, "bad_field", f"{name}: {err}") from None


def _flag(form: dict[str, Part], name: str, default: bool) -> bool:
    part = form.get(name)
    if part is None or not part.text.strip():
        return default
    v = part.text.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise HTTPError(400, "bad_field", f"{name}: expected 1/0 (true/false), got {part.text!r}")


def _check_fields(form: dict[str, Part], allowed: set[str]) -> None:
    extra = sorted(set(form) - allowed)
    if extra:
        raise HTTPError(400, "bad_field", f"unknown field {extra[0]!r}; this operation takes "
                        f"{', '.join(sorted(allowed))}")


def _audio_part(form: dict[str, Part], name: str) -> Part:
    part = form.get(name)
    if part is None:
        raise HTTPError(400, "missing_field", f"no '{name}' file in the form; send it as "
                        f"-F {name}=@file.wav")
    return part


def continue_options(form: dict[str, Part], cfg: ServeConfig) -> ContinueOptions:
    """The sampling fields, in the ranges of ``speechlm continue``'s flags."""
    d = ContinueOptions()
    opts = ContinueOptions(
        seconds=_field(form, "seconds", float, 0, cfg.max_seconds, d.seconds, lo_open=True),
        temperature=_field(form, "temperature", float, 0, 100, d.temperature),
        top_p=_field(form, "top_p", float, 0, 1, None, lo_open=True),
        top_k=_field(form, "top_k", int, 1, None, None),
        repetition_penalty=_field(form, "repetition_penalty", float, 0, 100,
                                  d.repetition_penalty, lo_open=True),
        seed=_field(form, "seed", int, SEED_MIN, SEED_MAX, None),
        num_samples=_field(form, "num_samples", int, 1, cfg.max_samples, 1))
    if opts.seed is not None and opts.seed + opts.num_samples - 1 > SEED_MAX:
        raise HTTPError(400, "bad_field", f"seed {opts.seed} + num_samples {opts.num_samples} "
                        f"runs past the largest seed ({SEED_MAX}); give a smaller seed")
    return opts


# ------------------------------------------------------------------------------ responses

def error_response(err: HTTPError) -> JSONResponse:
    return JSONResponse({"error": err.message, "code": err.code, "status": err.status},
                        status_code=err.status, headers=err.headers)


def as_http_error(err: BaseException) -> HTTPError:
    """A job's exception as the refusal the client sees."""
    if isinstance(err, HTTPError):
        return err
    if isinstance(err, Busy):
        return HTTPError(503, "busy", str(err), {"Retry-After": str(err.retry_after)})
    if isinstance(err, AudioError):
        return HTTPError(422, "bad_audio", str(err))
    if isinstance(err, (SpeechLMError, ValueError)):
        return HTTPError(400, "bad_request", str(err))
    if isinstance(err, Cancelled):
        return HTTPError(499, "cancelled", "the request was cancelled")
    log.error("internal error", exc_info=err)
    return HTTPError(500, "internal", f"internal error ({type(err).__name__}); see the server log")


def _line(obj: dict) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _progress(job: Job, queue: JobQueue) -> dict:
    p = job.progress
    if job.started is None:
        return {"event": "queued", "position": queue.position(job)}
    return {"event": "progress", "done": p.done, "total": p.total, "stage": p.stage}


async def _stream(job: Job, queue: JobQueue) -> AsyncIterator[bytes]:
    """NDJSON events of ``job``; the job is cancelled if the client goes (the response is
    cancelled by Starlette, or a write fails) before it finishes."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # the loop has closed
            pass

    job.on_change(notify)
    try:
        last = None
        while not job.future.done():
            ev = _progress(job, queue)
            if ev != last:
                yield _line(ev)
                last = ev
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                yield _line({"event": "heartbeat"})
        err = job.future.exception()
        if err is None:
            yield _line({"event": "result", "result": job.future.result()})
        else:
            e = as_http_error(err)
            yield _line({"event": "error", "error": e.message, "code": e.code,
                         "status": e.status})
    finally:
        job.cancel()


async def _wait(job: Job, request: Request) -> Any:
    """The job's result; cancels the job and raises :class:`Cancelled` if the client goes."""
    fut = asyncio.wrap_future(job.future)
    # a job that ends after its client left still hands its exception over: take it
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        while True:
            done, _ = await asyncio.wait({fut}, timeout=DISCONNECT_POLL_S)
            if done:
                return fut.result()
            if await request.is_disconnected():
                log.info("client went away: cancelling job %s", job.id)
                raise Cancelled(job.id)
    finally:
        job.cancel()


# ------------------------------------------------------------------------------ routes

async def _operation(request: Request, kind: str, allowed: set[str],
                     make: Callable[[dict[str, Part], Server], Any]) -> Response:
    """Read and check the form, validate its audio, queue the job, answer."""
    srv: Server = request.app.state.server
    try:
        if srv.queue.full():  # refuse before reading an upload we could not run
            raise srv.queue.busy_error()
        body = await read_body(request, srv.config.max_upload_bytes,
                               srv.config.upload_timeout_s)
        form = parse_form(body, request.headers.get("content-type"))
        del body
        _check_fields(form, allowed)
        fn, total = await make(form, srv)
        job = srv.queue.submit(Job(fn, kind, total))
    except (HTTPError, Busy) as err:
        return error_response(as_http_error(err))
    if request.query_params.get("stream", "0") not in ("", "0", "false"):
        return StreamingResponse(_stream(job, srv.queue), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store"})
    try:
        return JSONResponse(await _wait(job, request))
    except Cancelled:
        return Response(status_code=499)
    except Exception as err:  # every failure of the job becomes a JSON refusal
        return error_response(as_http_error(err))


async def _load(form: dict[str, Part], srv: Server, name: str):
    return await load_upload_async(_audio_part(form, name), srv.tmpdir,
                                   srv.config.max_audio_seconds, srv.decode_lane)


async def analyze(request: Request) -> Response:
    async def make(form, srv):
        wav = await _load(form, srv, "audio")
        return (lambda job: srv.engine.analyze(wav, job)), 1
    return await _operation(request, "analyze", {"audio"}, make)


CONTINUE_FIELDS = {"audio", "seconds", "temperature", "top_p", "top_k", "repetition_penalty",
                   "seed", "num_samples", "judge"}


async def continue_(request: Request) -> Response:
    async def make(form, srv):
        opts = continue_options(form, srv.config)
        judge = _flag(form, "judge", True)
        wav = await _load(form, srv, "audio")
        return (lambda job: srv.engine.continue_(wav, opts, job, judge)), opts.num_samples
    return await _operation(request, "continue", CONTINUE_FIELDS, make)


async def resynth(request: Request) -> Response:
    async def make(form, srv):
        no_f0, judge = _flag(form, "no_f0", False), _flag(form, "judge", True)
        wav = await _load(form, srv, "audio")
        return (lambda job: srv.engine.resynth(wav, job, None, no_f0, judge)), 3
    return await _operation(request, "resynth", {"audio", "no_f0", "judge"}, make)


async def convert(request: Request) -> Response:
    async def make(form, srv):
        no_f0, judge = _flag(form, "no_f0", False), _flag(form, "judge", True)
        wav = await _load(form, srv, "audio")
        voice = await _load(form, srv, "voice")
        return (lambda job: srv.engine.resynth(wav, job, voice, no_f0, judge)), 3
    return await _operation(request, "convert", {"audio", "voice", "no_f0", "judge"}, make)


async def info(request: Request) -> Response:
    from speechlm import __version__

    srv: Server = request.app.state.server
    return JSONResponse({"version": __version__, "model": srv.engine.info(),
                         "limits": srv.config.public(), "queue": srv.queue.stats(),
                         "results_kept": len(srv.store)})


async def result(request: Request) -> Response:
    srv: Server = request.app.state.server
    item = srv.store.get(request.path_params["key"])
    if item is None:
        return error_response(HTTPError(404, "not_found", "no such result (results are kept "
                                        f"{srv.config.result_age_s:g} s, or until "
                                        "newer ones need the memory); run the request again"))
    media, filename, data = item
    disp = "attachment" if request.query_params.get("download") else "inline"
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'{disp}; filename="{filename}"', "Cache-Control": "no-store"})


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return error_response(HTTPError(status, "not_found" if status == 404 else "bad_request",
                                    f"{request.method} {request.url.path}: "
                                    f"{getattr(exc, 'detail', 'not found')}"))


ROUTES_DOC = """\
GET  /                      the page
GET  /api/info              model, limits, queue, whether the judges are available
POST /api/analyze           audio                 -> units + view
POST /api/continue          audio + sampling      -> prompt + samples (wav_url, units_url, judge)
POST /api/resynth           audio [no_f0]         -> output (wav_url, units_url, judge)
POST /api/convert           audio + voice [no_f0] -> output in the voice of `voice`
GET  /api/results/KEY       an output file (wav or units JSON lines); ?download=1 to save
"""


def create_app(engine: Engine, config: ServeConfig | None = None) -> Starlette:
    """The application around a loaded :class:`Engine`."""
    config = config or ServeConfig()
    srv = Server(engine, config)

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            srv.close()

    middleware = []
    if config.allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware,
                                     allowed_hosts=list(config.allowed_hosts)))
    app = Starlette(routes=[
        Route("/", page),
        Route("/api/info", info),
        Route("/api/analyze", analyze, methods=["POST"]),
        Route("/api/continue", continue_, methods=["POST"]),
        Route("/api/resynth", resynth, methods=["POST"]),
        Route("/api/convert", convert, methods=["POST"]),
        Route("/api/results/{key}", result),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], middleware=middleware, lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found})
    app.state.server = srv
    return app


@contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0,
                    start_timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` with uvicorn on a background thread (tests, benchmarks); yields its base
    URL (``http://127.0.0.1:PORT``) and stops the server on exit."""
    import uvicorn

    sock = socket.create_server((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_keep_alive=5, log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="speechlm-serve-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def build_engine(model: str = "default", judges: bool = True,
                 config: ServeConfig | None = None) -> Engine:
    """Load the model once and wrap it."""
    from speechlm.pipeline import SpeechLM

    config = config or ServeConfig()
    return Engine(SpeechLM.load(model), ResultStore(config.result_bytes, config.result_age_s),
                  judges)


__all__ = ["ROUTES_DOC", "ServeConfig", "Server", "build_engine", "create_app",
           "serve_in_thread"]
