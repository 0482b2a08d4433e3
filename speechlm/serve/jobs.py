"""The model's job queue and the store of finished results.

One worker thread runs every model job in order, so the model is used by one thread at a time
and a busy server never runs more than one job on its cores. The queue is bounded: past
``max_pending`` jobs (waiting + running), :meth:`JobQueue.submit` raises :class:`Busy` and the
server answers "busy, retry" (HTTP 503) at once instead of piling up work.

A job is cancelled when the client that asked for it goes away: a waiting job is dropped
before it starts, a running one stops at its next :meth:`Job.step`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)


class Busy(Exception):
    """The queue is full; ``str(err)`` says so and how long to wait."""

    def __init__(self, pending: int, limit: int, retry_after: int):
        super().__init__(f"busy: {pending} jobs are waiting or running (the limit is {limit}); "
                         f"retry in about {retry_after} s")
        self.retry_after = retry_after


class Cancelled(Exception):
    """The job was cancelled (its client went away) before it finished."""


@dataclasses.dataclass
class Progress:
    """Where a job stands: ``done`` of ``total`` steps, and what it is doing now."""

    done: int = 0
    total: int = 1
    stage: str = "queued"


class Job:
    """One unit of model work. ``fn(job)`` runs on the worker thread and calls :meth:`step`
    to report progress (and to stop there when the job was cancelled)."""

    def __init__(self, fn: Callable[[Job], Any], kind: str, total: int = 1):
        self.fn = fn
        self.kind = kind
        self.id = secrets.token_hex(6)
        self.future: Future = Future()
        self.progress = Progress(0, total, "queued")
        self.created = time.monotonic()
        self.started: float | None = None
        self._cancel = threading.Event()
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the job to stop (a no-op once it has finished)."""
        if not self.future.done():
            self._cancel.set()

    def step(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        """Report progress; raises :class:`Cancelled` if the job was cancelled."""
        if self._cancel.is_set():
            raise Cancelled(self.id)
        with self._lock:
            self.progress = Progress(self.progress.done if done is None else done,
                                     self.progress.total if total is None else total, stage)
            listeners = list(self._listeners)
        for f in listeners:
            f()

    def on_change(self, f: Callable[[], None]) -> None:
        """Call ``f()`` (from the worker thread) whenever the progress changes."""
        with self._lock:
            self._listeners.append(f)


class JobQueue:
    """A bounded FIFO of :class:`Job` run by one worker thread.

    Args:
        max_pending: jobs allowed waiting + running; one more raises :class:`Busy`.
        seconds_per_job: a typical job's length, for the ``Retry-After`` hint.
    """

    def __init__(self, max_pending: int = 4, seconds_per_job: float = 2.0):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.max_pending = max_pending
        self.seconds_per_job = seconds_per_job
        self._jobs: collections.deque[Job] = collections.deque()
        self._cv = threading.Condition()
        self._running: Job | None = None
        self._closed = False
        self.counts = collections.Counter()  # submitted, done, failed, cancelled, refused
        self._thread = threading.Thread(target=self._work, name="speechlm-serve-worker",
                                        daemon=True)
        self._thread.start()

    # --- state
    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._jobs) + (self._running is not None)

    def full(self) -> bool:
        return self.pending >= self.max_pending

    def position(self, job: Job) -> int:
        """Jobs ahead of ``job`` (0: it is running or next)."""
        with self._cv:
            try:
                return self._jobs.index(job) + (self._running is not None)
            except ValueError:
                return 0

    def stats(self) -> dict[str, int]:
        with self._cv:
            return {"waiting": len(self._jobs), "running": int(self._running is not None),
                    "max_pending": self.max_pending,
                    **{k: self.counts[k] for k in
                       ("submitted", "done", "failed", "cancelled", "refused")}}

    # --- use
    def busy_error(self) -> Busy:
        pending = self.pending
        self.counts["refused"] += 1
        return Busy(pending, self.max_pending,
                    max(1, round(pending * self.seconds_per_job)))

    def submit(self, job: Job) -> Job:
        """Queue ``job``; raises :class:`Busy` when ``max_pending`` jobs are already in."""
        with self._cv:
            if self._closed:
                raise RuntimeError("the job queue is closed")
            if len(self._jobs) + (self._running is not None) >= self.max_pending:
                raise self.busy_error()
            self._jobs.append(job)
            self.counts["submitted"] += 1
            self._cv.notify()
        return job

    def close(self, timeout: float = 10.0) -> None:
        """Cancel what waits, let the running job stop, end the worker."""
        with self._cv:
            self._closed = True
            for job in self._jobs:
                job.cancel()
            if self._running is not None:
                self._running.cancel()
            self._cv.notify_all()
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closed:
                    self._cv.wait()
                if not self._jobs:
                    return
                job = self._running = self._jobs.popleft()
            try:
                self._run(job)
            finally:
                with self._cv:
                    self._running = None

    def _run(self, job: Job) -> None:
        if job.cancelled:
            self.counts["cancelled"] += 1
            job.future.set_exception(Cancelled(job.id))
            return
        job.started = time.monotonic()
        try:
            job.step("started")
            result = job.fn(job)
        except Cancelled as err:
            self.counts["cancelled"] += 1
            log.info("job %s (%s) cancelled", job.id, job.kind)
            job.future.set_exception(err)
        except BaseException as err:  # the caller turns user errors into 4xx, the rest into 500
            self.counts["failed"] += 1
            job.future.set_exception(err)
        else:
            self.counts["done"] += 1
            job.future.set_result(result)
        for f in list(job._listeners):
            f()


class ResultStore:
    """Finished files (wav, units) kept in memory for download, oldest dropped first past
    ``max_bytes`` or after ``max_age`` seconds. Nothing is written to disk."""

    def __init__(self, max_bytes: int = 256 * 2**20, max_age: float = 3600.0):
        self.max_bytes = max_bytes
        self.max_age = max_age
        # key -> (time stored, media type, file name, data)
        self._items: collections.OrderedDict[str, tuple[float, str, str, bytes]] = \
            collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, data: bytes, media_type: str, filename: str) -> str:
        """Store ``data``; returns its key (unguessable)."""
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._items[key] = (time.monotonic(), media_type, filename, data)
            self._bytes += len(data)
            self._evict()
        return key

    def get(self, key: str) -> tuple[str, str, bytes] | None:
        """``(media type, file name, data)``, or ``None`` when unknown or dropped."""
        with self._lock:
            self._evict()
            item = self._items.get(key)
        return None if item is None else item[1:]

    def _evict(self) -> None:
        now = time.monotonic()
        while self._items:
            key, (t, _, _, data) = next(iter(self._items.items()))
            if self._bytes <= self.max_bytes and now - t <= self.max_age:
                break
            del self._items[key]
            self._bytes -= len(data)

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["Busy", "Cancelled", "Job", "JobQueue", "Progress", "ResultStore"]
