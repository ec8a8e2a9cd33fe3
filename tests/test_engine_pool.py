"""AsyncCompressor: concurrency, shared ORT runs, bounded queue, same results as sync."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from policies.engine import AsyncCompressor, EngineBusy
from tests.fixtures.models import sample_texts


async def test_concurrent_results_equal_sync(tiny_compressor_xlmr: Any) -> None:
    texts = sample_texts()[:16]
    pool = AsyncCompressor(tiny_compressor_xlmr, queue_size=64, batch_window_ms=50)
    await pool.start()
    try:
        jobs = [pool.compress(t, rate=0.5) for t in texts]
        jobs += [pool.compress(t, mode="reference", rate=0.5) for t in texts[:4]]
        results = await asyncio.gather(*jobs)
    finally:
        await pool.close()
    sync = [tiny_compressor_xlmr.compress(t, rate=0.5) for t in texts]
    sync += [tiny_compressor_xlmr.compress(t, mode="reference", rate=0.5) for t in texts[:4]]
    assert [r["compressed_prompt"] for r in results] == [s["compressed_prompt"] for s in sync]
    # micro-batching: 20 requests needed far fewer ORT runs than requests
    assert pool.batches_run < len(jobs)


async def test_queue_full_raises_engine_busy(tiny_compressor_bert: Any) -> None:
    pool = AsyncCompressor(tiny_compressor_bert, queue_size=2, batch_window_ms=1)
    await pool.start()
    gate = threading.Event()
    original = pool._process

    def blocked(jobs: list[Any]) -> None:
        gate.wait(10)
        original(jobs)

    pool._process = blocked  # type: ignore[method-assign]
    try:
        first = asyncio.ensure_future(pool.compress("one two three", rate=0.5))
        for _ in range(500):  # wait until the worker holds job 1 and the queue is empty
            await asyncio.sleep(0.01)
            if first.done() or (pool.pending == 0 and pool._busy):
                break
        queued = [asyncio.ensure_future(pool.compress("four five", rate=0.5)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(EngineBusy):
            await pool.compress("six seven", rate=0.5)
        gate.set()
        done = await asyncio.gather(first, *queued)
        assert all(isinstance(d["compressed_prompt"], str) for d in done)
    finally:
        gate.set()
        await pool.close()


async def test_errors_reach_the_caller(tiny_compressor_bert: Any) -> None:
    pool = AsyncCompressor(tiny_compressor_bert)
    try:
        with pytest.raises(ValueError):
            await pool.compress("text", mode="nope")
        with pytest.raises(NotImplementedError):
            await pool.compress("some text here", token_to_word="max")
        ok = await pool.compress("still works after errors", rate=0.5)
        assert ok["origin_tokens"] > 0
    finally:
        await pool.close()


async def test_event_loop_stays_responsive(tiny_compressor_bert: Any) -> None:
    pool = AsyncCompressor(tiny_compressor_bert)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        await pool.compress(" ".join(sample_texts()[:8]) * 4, rate=0.3)
    finally:
        task.cancel()
        await pool.close()
    assert ticks > 1


def test_sync_compress_is_thread_safe(tiny_compressor_xlmr: Any) -> None:
    texts = sample_texts()[:6]
    expected = [tiny_compressor_xlmr.compress(t, rate=0.4)["compressed_prompt"] for t in texts]
    out: dict[int, str] = {}

    def work(i: int) -> None:
        out[i] = tiny_compressor_xlmr.compress(texts[i % 6], rate=0.4)["compressed_prompt"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [out[i] for i in range(12)] == expected * 2
