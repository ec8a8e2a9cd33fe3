"""SQLite schema and connections for the savings ledger.

Kept apart from the writer thread so the report (read-only) and the ledger
(writer) share one definition of the table. WAL mode lets readers run while a
proxy writes; ``busy_timeout`` lets several proxy processes share one file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from proxy.pricing import Price, PriceTable, request_cost
from proxy.records import RequestRecord

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    request_id TEXT NOT NULL,
    route TEXT NOT NULL,
    upstream TEXT NOT NULL,
    model TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    compression TEXT NOT NULL,
    tokens_before INTEGER,
    tokens_after INTEGER,
    encoding TEXT,
    prompt_tokens INTEGER,
    cached_tokens INTEGER,
    completion_tokens INTEGER,
    compression_ms REAL,
    overhead_ms REAL,
    upstream_ttfb_ms REAL,
    total_ms REAL,
    cost_before_usd REAL,
    cost_after_usd REAL,
    cost_saved_usd REAL,
    price_basis TEXT,
    price_input REAL,
    price_cached_input REAL,
    price_output REAL,
    error TEXT,
    prompt_before TEXT,
    prompt_after TEXT,
    extra TEXT,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_route_ts ON requests (route, ts);
CREATE INDEX IF NOT EXISTS requests_model_ts ON requests (model, ts);
"""

COLUMNS: tuple[str, ...] = (
    "ts", "request_id", "route", "upstream", "model", "stream", "status", "compression",
    "tokens_before", "tokens_after", "encoding", "prompt_tokens", "cached_tokens",
    "completion_tokens", "compression_ms", "overhead_ms", "upstream_ttfb_ms", "total_ms",
    "cost_before_usd", "cost_after_usd", "cost_saved_usd", "price_basis", "price_input",
    "price_cached_input", "price_output", "error", "prompt_before", "prompt_after", "extra",
    "pid",
)  # fmt: skip

INSERT_SQL = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class LedgerError(Exception):
    """The ledger file is missing, unreadable, or has an unknown schema."""


def open_writer(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating if needed) the ledger for writing, WAL mode, schema ensured.

    Switching a brand-new file to WAL can fail with "database is locked" without
    SQLite waiting on ``busy_timeout`` when several processes start at once: retried.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return _open_writer_once(path)
        except LedgerError as exc:
            locked = isinstance(exc.__cause__, sqlite3.OperationalError) and "locked" in str(exc)
            if not locked or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _open_writer_once(path: str | os.PathLike[str]) -> sqlite3.Connection:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (see write_batch).
    try:
        conn = sqlite3.connect(
            str(p), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open ledger {p}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # One transaction, so concurrent processes create the schema exactly once.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {p} has schema version {row[0]}, newer than this "
                    f"linguagate ({SCHEMA_VERSION})"
                )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
    except sqlite3.Error as exc:
        conn.close()
        raise LedgerError(f"cannot open ledger {p}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def write_batch(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    """Insert ``rows`` in one transaction (all or nothing)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(INSERT_SQL, rows)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def open_reader(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open an existing ledger read-only; never creates a file."""
    p = Path(path)
    if not p.is_file():
        raise LedgerError(f"ledger file not found: {p}")
    try:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open ledger {p}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or int(row[0]) > SCHEMA_VERSION:
            raise LedgerError(f"{p} is not a linguagate ledger this version can read")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise LedgerError(f"{p} is not a linguagate ledger ({exc})") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def record_row(
    rec: RequestRecord, prices: PriceTable, *, store_prompts: bool, pid: int
) -> tuple[object, ...]:
    """One INSERT parameter tuple for ``rec``; prices computed here, off the event loop.

    Values come from client input (``model`` is whatever JSON the client sent), so
    they are coerced here: one odd record must not make a whole batch fail.
    """
    model = _text(rec.model)
    price: Price | None = prices.lookup(model)
    cost = None
    if price is not None:
        cost = request_cost(
            price,
            tokens_before=_int(rec.tokens_before),
            tokens_after=_int(rec.tokens_after),
            prompt_tokens=_int(rec.prompt_tokens),
            cached_tokens=_int(rec.cached_tokens),
            completion_tokens=_int(rec.completion_tokens),
        )
    extra = json.dumps(rec.extra, default=str, sort_keys=True) if rec.extra else None
    return (
        float(rec.started_at),
        _str(rec.request_id),
        _str(rec.route),
        _str(rec.upstream),
        model,
        int(bool(rec.stream)),
        int(rec.status),
        _str(rec.compression),
        _int(rec.tokens_before),
        _int(rec.tokens_after),
        _text(rec.encoding),
        _int(rec.prompt_tokens),
        _int(rec.cached_tokens),
        _int(rec.completion_tokens),
        _float(rec.compression_ms),
        _float(rec.overhead_ms),
        _float(rec.upstream_ttfb_ms),
        _float(rec.total_ms),
        cost.before_usd if cost else None,
        cost.after_usd if cost else None,
        cost.saved_usd if cost else None,
        price.basis if price else None,
        price.input if price else None,
        price.cached_input if price else None,
        price.output if price else None,
        _text(rec.error),
        _text(rec.prompt_before) if store_prompts else None,
        _text(rec.prompt_after) if store_prompts else None,
        extra,
        pid,
    )


def _text(value: object) -> str | None:
    return None if value is None else _str(value)


def _str(value: object) -> str:
    """``str(value)`` that SQLite can bind: lone surrogates (valid JSON ``"\\ud800"``,
    which Python keeps as-is) would raise UnicodeEncodeError, so they become U+FFFD."""
    text = str(value)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # One U+FFFD per lone surrogate (a UTF-8 round trip would give three).
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
