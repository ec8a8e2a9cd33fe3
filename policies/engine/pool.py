"""``AsyncCompressor``: bounded queue, inference worker thread(s), cross-request micro-batching.

Each job is a mode generator (see compressor.py). A worker takes the first
waiting job, waits up to ``batch_window_ms`` for more, then advances all of them
together: the chunks that every job needs are stacked into shared ORT runs, so
many small concurrent requests cost a few large batches instead of many tiny
ones. All tokenisation and post-processing also run in the worker, so the event
loop only enqueues and awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.engine.compressor import Compressor
from policies.engine.words import InferRequest, ModeGen

log = logging.getLogger("linguagate.engine")
_STOP = object()


class EngineBusy(Exception):
    """The compression queue is full; callers should skip compression (fail open)."""


@dataclass
class _Job:
    gen: ModeGen
    future: asyncio.Future[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    request: InferRequest | None = None
    done: bool = False


class AsyncCompressor:
    def __init__(
        self,
        compressor: Compressor,
        queue_size: int = 64,
        batch_window_ms: float = 2,
        max_batch_tokens: int = 16384,
        workers: int = 1,
    ) -> None:
        self.compressor = compressor
        self.queue_size = max(1, int(queue_size))
        self.batch_window = max(0.0, batch_window_ms / 1000)
        self.max_batch_tokens = max_batch_tokens
        self.n_workers = max(1, workers)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.queue_size)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.batches_run = 0  # ORT runs issued (for tests and metrics)
        self._busy = 0  # workers currently processing a batch

    @property
    def device(self) -> str:
        return self.compressor.device

    async def start(self) -> None:
        self._ensure_started()

    def _ensure_started(self) -> None:
        with self._lock:
            if self._threads:
                return
            for i in range(self.n_workers):
                t = threading.Thread(
                    target=self._worker, name=f"linguagate-engine-{i}", daemon=True
                )
                t.start()
                self._threads.append(t)

    async def close(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            await asyncio.to_thread(self._queue.put, _STOP)
        for t in threads:
            await asyncio.to_thread(t.join)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def compress(self, context: str | Sequence[str], **kwargs: Any) -> dict[str, Any]:
        """Same arguments and result as :meth:`Compressor.compress`; raises EngineBusy."""
        self._ensure_started()
        gen = self.compressor.start(context, **kwargs)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        try:
            self._queue.put_nowait(_Job(gen, fut, loop))
        except queue.Full:
            gen.close()
            raise EngineBusy(f"compression queue full ({self.queue_size} pending)") from None
        return await fut

    # ---------------------------------------------------------------- worker side
    def _worker(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs = [first]
            deadline = time.monotonic() + self.batch_window
            stop = False
            while len(jobs) < self.queue_size:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                jobs.append(nxt)
            self._busy += 1
            try:
                self._process(jobs)
            except Exception as exc:  # never let one bad batch kill the worker
                log.exception("engine batch failed")
                for job in jobs:
                    if not job.done:
                        _deliver(job, exc=exc)
            finally:
                self._busy -= 1
            if stop:
                return

    def _process(self, jobs: list[_Job]) -> None:
        for job in jobs:
            _advance(job, None, first=True)
        while True:
            active = [j for j in jobs if not j.done and j.request is not None]
            if not active:
                return
            groups: dict[tuple[int | None, int], list[_Job]] = {}
            for job in active:
                assert job.request is not None
                groups.setdefault((job.request.fixed_len, job.request.pad_id), []).append(job)
            for (fixed, pad), members in groups.items():
                seqs = [s for j in members for s in j.request.seqs]  # type: ignore[union-attr]
                merged = InferRequest(seqs, fixed, pad)
                try:
                    probs = self.compressor.infer(merged, self.max_batch_tokens) if seqs else []
                    self.batches_run += 1
                except Exception as exc:
                    for job in members:
                        _deliver(job, exc=exc)
                    continue
                k = 0
                for job in members:
                    n = len(job.request.seqs)  # type: ignore[union-attr]
                    _advance(job, probs[k : k + n])
                    k += n


def _advance(job: _Job, probs: list[np.ndarray] | None, first: bool = False) -> None:
    """Step a job's generator; record its next request or deliver its result."""
    if job.done:
        return
    if job.future.cancelled():
        job.gen.close()
        job.done = True
        return
    try:
        job.request = next(job.gen) if first else job.gen.send(probs or [])
    except StopIteration as stop:
        _deliver(job, result=stop.value)
    except Exception as exc:
        _deliver(job, exc=exc)


def _deliver(job: _Job, result: Any = None, exc: BaseException | None = None) -> None:
    job.done = True

    def _set() -> None:
        if job.future.done():
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # loop already closed
        job.loop.call_soon_threadsafe(_set)
