"""Run independent pieces of inference in worker threads, each with one intra-op thread.

On a small CPU, splitting every operator of one forward pass across the cores (torch's
intra-op threads) pays a synchronisation after each operator; how much depends on how the
OpenMP workers wait (``OMP_WAIT_POLICY``). Independent pieces of work (files, or the chunks
of a long file) need no synchronisation: two worker threads, each running its own forward
passes on one core, kept the phone tokenizer at 375x real time on 2 cores under
``OMP_WAIT_POLICY=PASSIVE``, where 2 intra-op threads gave 169x
(``benchmarks/bench_phone_tokenize.py`` measures both). torch releases the GIL inside its
operators, so threads suffice.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


@contextlib.contextmanager
def single_threaded_ops() -> Iterator[None]:
    """Within the block, torch operators use one thread each (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int,
                window: int | None = None) -> Iterator[R]:
    """``map(fn, items)`` over ``workers`` threads, yielding results in the order of ``items``.

    ``items`` is consumed lazily: at most ``window`` (default ``2 * workers``) items are in
    flight, so a long stream of large inputs (chunks of an hour of audio) stays in bounded
    memory. An exception raised by ``fn`` surfaces when its result is reached, after the
    results before it. With ``workers <= 1`` it is the plain ``map`` in the calling thread.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    window = max(window or 2 * workers, workers)
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="speechlm") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the caller stopped early, or a result raised: drop what is still queued
            for f in pending:
                f.cancel()


__all__ = ["ordered_map", "single_threaded_ops"]
