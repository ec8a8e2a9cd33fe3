"""Savings ledger: one SQLite row per proxied chat request, written off the request path.

``record()`` runs on the event loop, so it only updates metrics and appends to a
bounded in-memory queue; a background thread writes batches with executemany
in one transaction every ``flush_interval_ms`` or ``batch_size`` records. When
the queue is full the record is dropped and counted (a response must never
wait for the disk). ``close()`` flushes everything that was queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.ledger_db import COLUMNS, open_writer, record_row, write_batch
from proxy.metrics import ProxyMetrics
from proxy.pricing import PriceTable
from proxy.records import RequestRecord

if TYPE_CHECKING:
    from policies.config import Config

log = logging.getLogger("linguagate.ledger")

_WAKE = object()  # queued by close() so the writer notices the stop at once
_WRITE_ATTEMPTS = 3
_DROP_LOG_EVERY_S = 10.0
_SAVED_COL = COLUMNS.index("cost_saved_usd")
_ROUTE_COL = COLUMNS.index("route")


class Ledger:
    """Queues RequestRecords and writes them to SQLite in batches off the event loop.

    Also feeds the Prometheus metrics (``self.metrics``) from the same records, so
    ``/metrics`` works even when ``ledger.path`` is null (no SQLite then).
    """

    def __init__(
        self,
        config: Config,
        *,
        metrics: ProxyMetrics | None = None,
        max_queue: int | None = None,
    ) -> None:
        self.config = config
        lc: Any = getattr(config, "ledger", None)
        raw_path = getattr(lc, "path", None)
        self.path: Path | None = Path(raw_path).expanduser().absolute() if raw_path else None
        self.store_prompts = bool(getattr(lc, "store_prompts", False))
        self.batch_size = max(1, int(getattr(lc, "batch_size", 200) or 200))
        interval_ms = getattr(lc, "flush_interval_ms", 500)
        self.flush_interval_s = max(0.001, float(500 if interval_ms is None else interval_ms) / 1e3)
        self.max_queue = max_queue or max(10_000, self.batch_size * 20)
        self.prices = PriceTable.from_config(config)
        self.metrics = metrics or ProxyMetrics()
        self.written = 0
        self.dropped = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=self.max_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_drop_log = 0.0
        self._pid = os.getpid()
        self._progress = threading.Condition()
        self.metrics.ledger_queue.set_function(self._queue.qsize)

    @classmethod
    def from_config(cls, config: Config) -> Ledger:
        return cls(config)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    async def start(self) -> None:
        """Open (or create) the database and start the writer; errors surface at startup."""
        if self.path is None or self._thread is not None:
            return
        conn = await asyncio.to_thread(open_writer, self.path)
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="linguagate-ledger", daemon=True
        )
        self._thread.start()

    def record(self, record: RequestRecord) -> None:
        """Account one finished request. Never blocks; drops (counted) when the queue is full."""
        try:
            self.metrics.observe(record)
        except Exception:  # metrics must never break a request
            log.exception("metrics update failed")
        if self.path is None:
            return
        if self._closed:
            self._drop(1, "closed")
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop(1, "queue_full")

    async def close(self) -> None:
        """Stop the writer after it has written everything queued so far."""
        self._closed = True
        thread = self._thread
        if thread is None:
            left = self._queue.qsize()  # never started (startup failed): nothing can write
            if left and self.path is not None:
                self._drop(left, "closed")
            return
        self._stop.set()
        # When the queue is full the writer is busy draining and sees the flag soon.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)
        await asyncio.to_thread(thread.join)
        self._thread = None

    async def flush(self) -> None:
        """Wait until every record queued before this call is written (tests, /savings)."""
        if self._thread is None:
            return
        await asyncio.to_thread(self._queue.join)

    def wait_written(self, n: int, timeout: float) -> bool:
        """Block until ``n`` records were written or dropped (tests, tools; not on the loop)."""
        with self._progress:
            return self._progress.wait_for(lambda: self.written + self.dropped >= n, timeout)

    # -- writer thread ---------------------------------------------------------

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                batch = self._collect()
                if batch:
                    try:
                        self._write(conn, batch)
                    except Exception:  # never let one batch stop the writer
                        log.exception("ledger: dropping %d records", len(batch))
                        self._drop(len(batch), "write_error")
                    finally:
                        for _ in batch:
                            self._queue.task_done()
                elif self._stop.is_set() and self._queue.empty():
                    return
        except Exception:  # pragma: no cover - last resort, keep the proxy alive
            log.exception("ledger writer stopped")
        finally:
            conn.close()

    def _collect(self) -> list[RequestRecord]:
        """Up to batch_size records; waits at most flush_interval after the first one."""
        batch: list[RequestRecord] = []
        deadline: float | None = None
        while len(batch) < self.batch_size:
            if self._stop.is_set():
                timeout = 0.0
            elif deadline is None:
                timeout = self.flush_interval_s
            else:
                timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _WAKE:
                self._queue.task_done()
                continue
            assert isinstance(item, RequestRecord)
            batch.append(item)
            if deadline is None:
                deadline = time.monotonic() + self.flush_interval_s
        return batch

    def _write(self, conn: sqlite3.Connection, batch: list[RequestRecord]) -> None:
        rows = []
        for rec in batch:
            try:
                rows.append(
                    record_row(rec, self.prices, store_prompts=self.store_prompts, pid=self._pid)
                )
            except Exception as exc:  # no message: it may quote client data
                log.warning("ledger: unusable record (%s); dropped", type(exc).__name__)
                self._drop(1, "bad_record")
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                write_batch(conn, rows)
            except sqlite3.OperationalError as exc:  # locked, busy, disk: the whole file
                if attempt == _WRITE_ATTEMPTS:
                    log.error("ledger: dropping %d records after write error: %s", len(rows), exc)
                    self._drop(len(rows), "write_error")
                    return
                time.sleep(0.05 * attempt)
                continue
            except Exception:  # a value SQLite cannot bind: find the row, keep the rest
                self._write_one_by_one(conn, rows)
                return
            self._written(rows)
            return

    def _write_one_by_one(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        """Insert ``rows`` one transaction each; only the rows that fail are dropped."""
        for i, row in enumerate(rows):
            try:
                write_batch(conn, [row])
            except sqlite3.OperationalError as exc:
                log.error("ledger: dropping %d records after write error: %s", len(rows) - i, exc)
                self._drop(len(rows) - i, "write_error")
                return
            except Exception as exc:  # no message: it may quote client data
                log.warning("ledger: unwritable record (%s); dropped", type(exc).__name__)
                self._drop(1, "bad_record")
                continue
            self._written([row])

    def _written(self, rows: list[tuple[object, ...]]) -> None:
        with self._progress:
            self.written += len(rows)
            self._progress.notify_all()
        self.metrics.ledger_written.inc(len(rows))
        self._count_cost(rows)

    def _count_cost(self, rows: list[tuple[object, ...]]) -> None:
        for row in rows:
            saved = row[_SAVED_COL]
            if isinstance(saved, float) and saved > 0:
                self.metrics.cost_saved.labels(str(row[_ROUTE_COL])).inc(saved)

    def _drop(self, n: int, reason: str) -> None:
        with self._progress:
            self.dropped += n
            self._progress.notify_all()
        self.metrics.ledger_dropped.labels(reason).inc(n)
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_EVERY_S:
            self._last_drop_log = now
            log.warning(
                "ledger: dropped %d record(s) (%s); %d dropped so far", n, reason, self.dropped
            )
