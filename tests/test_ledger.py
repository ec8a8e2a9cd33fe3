"""Ledger unit tests: batching, dropping, schema, prompts, several writers."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from policies.config import PriceEntry
from proxy.ledger import Ledger
from proxy.ledger_db import SCHEMA_VERSION, LedgerError, open_reader, open_writer
from tests.ledger_support import make_config, make_record, rows


async def test_records_are_written_with_costs_and_closed_flushes(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    ledger = Ledger.from_config(make_config(db, flush_interval_ms=60_000))
    await ledger.start()
    recs = [
        make_record(),
        make_record(
            route="chat",
            model="gpt-4o-mini",
            stream=True,
            compression="none",
            tokens_after=1000,
            prompt_tokens=None,
        ),
        make_record(
            status=502,
            compression="error:timeout",
            tokens_before=None,
            tokens_after=None,
            prompt_tokens=None,
            completion_tokens=None,
            error="upstream_unreachable",
            model="unknown-model",
        ),
    ]
    for rec in recs:
        ledger.record(rec)
    await ledger.close()  # flushes although the interval never elapsed
    got = rows(db)
    assert [r["request_id"] for r in got] == [r.request_id for r in recs]
    first, second, failed = got
    assert (first["route"], first["model"], first["stream"], first["status"]) == (
        "rag",
        "gpt-4o",
        0,
        200,
    )
    assert (first["tokens_before"], first["tokens_after"], first["encoding"]) == (
        1000,
        400,
        "o200k_base",
    )
    assert first["cost_saved_usd"] == pytest.approx(600 * 2.50 / 1e6)
    assert first["cost_before_usd"] - first["cost_after_usd"] == pytest.approx(
        first["cost_saved_usd"]
    )
    assert first["price_basis"].endswith("gpt-4o*") and first["price_input"] == 2.50
    assert first["prompt_before"] is None and first["prompt_after"] is None
    assert second["stream"] == 1 and second["cost_saved_usd"] == 0
    assert failed["status"] == 502 and failed["compression"] == "error:timeout"
    assert failed["tokens_before"] is None and failed["price_basis"] is None
    assert failed["error"] == "upstream_unreachable"
    assert ledger.written == 3 and ledger.dropped == 0


async def test_schema_wal_meta_and_indexes(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "ledger.sqlite"  # parent directory is created
    ledger = Ledger.from_config(make_config(db))
    await ledger.start()
    await ledger.close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"requests_ts", "requests_route_ts", "requests_model_ts"} <= indexes
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(LedgerError, match="schema version 99"):
        open_writer(db)
    with pytest.raises(LedgerError):
        open_reader(db)


def test_open_reader_missing_file_and_not_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="not found"):
        open_reader(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="not a linguagate ledger"):
        open_reader(junk)


async def test_store_prompts_and_price_override(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite"
    config = make_config(
        db, store_prompts=True, prices=(PriceEntry(model="gpt-4o*", input=1.0, output=1.0),)
    )
    ledger = Ledger.from_config(config)
    await ledger.start()
    ledger.record(make_record(prompt_before="long text", prompt_after="text", extra={"a": 1}))
    await ledger.close()
    (row,) = rows(db)
    assert (row["prompt_before"], row["prompt_after"]) == ("long text", "text")
    assert row["price_basis"] == "config gpt-4o*"
    assert row["cost_saved_usd"] == pytest.approx(600 / 1e6)
    assert row["extra"] == '{"a": 1}'


async def test_batch_size_triggers_a_write_before_the_interval(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite"
    ledger = Ledger.from_config(make_config(db, batch_size=5, flush_interval_ms=600_000))
    await ledger.start()
    try:
        for _ in range(5):
            ledger.record(make_record())
        # Only a full batch can be written: the interval is ten minutes.
        await asyncio.wait_for(ledger.flush(), 60)
        assert len(rows(db)) == 5
    finally:
        await ledger.close()


async def test_interval_triggers_a_partial_batch(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite"
    ledger = Ledger.from_config(make_config(db, batch_size=1000, flush_interval_ms=10))
    await ledger.start()
    try:
        for _ in range(3):
            ledger.record(make_record())
        await asyncio.wait_for(ledger.flush(), 60)
        assert len(rows(db)) == 3
    finally:
        await ledger.close()


async def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite"
    ledger = Ledger(make_config(db), max_queue=2)
    for _ in range(5):  # writer not started yet: the queue fills up
        ledger.record(make_record())
    assert ledger.dropped == 3
    await ledger.start()
    await ledger.close()
    assert len(rows(db)) == 2
    ledger.record(make_record())  # after close: counted, not written
    assert ledger.dropped == 4
    text = ledger.metrics.render().decode()
    assert 'linguagate_ledger_dropped_total{reason="queue_full"} 3.0' in text
    assert 'linguagate_ledger_dropped_total{reason="closed"} 1.0' in text
    assert "linguagate_ledger_written_total 2.0" in text


async def test_disabled_ledger_still_feeds_metrics(tmp_path: Path) -> None:
    ledger = Ledger.from_config(make_config(None))
    await ledger.start()
    ledger.record(make_record())
    await ledger.close()
    assert not ledger.enabled and not list(tmp_path.iterdir())
    assert 'linguagate_tokens_saved_total{route="rag"} 600.0' in ledger.metrics.render().decode()


async def test_two_writers_share_one_file(tmp_path: Path) -> None:
    """Two ledgers (as two proxy processes would) interleave batches on one file."""
    db = tmp_path / "shared.sqlite"
    a = Ledger.from_config(make_config(db, batch_size=7, flush_interval_ms=5))
    b = Ledger.from_config(make_config(db, batch_size=3, flush_interval_ms=5))
    await asyncio.gather(a.start(), b.start())
    for i in range(300):
        (a if i % 2 else b).record(make_record(request_id=f"r{i}"))
        if i % 50 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(a.close(), b.close())
    got = rows(db, "SELECT request_id FROM requests")
    assert sorted(r[0] for r in got) == sorted(f"r{i}" for i in range(300))


async def test_odd_client_values_never_sink_a_batch(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite"
    ledger = Ledger.from_config(make_config(db, batch_size=10, flush_interval_ms=600_000))
    await ledger.start()
    ledger.record(make_record(request_id="a", model=123))  # "model": 123 in the JSON body
    ledger.record(make_record(request_id="b", model={"x": 1}))
    ledger.record(make_record(request_id="c", tokens_before="many"))  # type: ignore[arg-type]
    ledger.record(make_record(request_id="d"))
    await ledger.close()
    got = {r["request_id"]: r["model"] for r in rows(db)}
    assert got == {"a": "123", "b": "{'x': 1}", "d": "gpt-4o"}
    assert ledger.dropped == 1
    assert 'reason="bad_record"} 1.0' in ledger.metrics.render().decode()


async def test_unusable_path_fails_at_startup(tmp_path: Path) -> None:
    ledger = Ledger.from_config(make_config(tmp_path))  # a directory, not a file
    with pytest.raises(LedgerError, match="cannot open ledger"):
        await ledger.start()
    ledger.record(make_record())
    await ledger.close()
    assert ledger.dropped == 1


async def test_write_errors_are_retried_then_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import proxy.ledger as ledger_mod

    calls: list[int] = []
    real = ledger_mod.write_batch

    def flaky(conn: sqlite3.Connection, batch: list[tuple[object, ...]]) -> None:
        calls.append(len(batch))
        if len(calls) <= 3:  # the first batch fails all three attempts
            raise sqlite3.OperationalError("database is locked")
        real(conn, batch)

    monkeypatch.setattr(ledger_mod, "write_batch", flaky)
    db = tmp_path / "l.sqlite"
    ledger = Ledger.from_config(make_config(db, batch_size=2, flush_interval_ms=600_000))
    await ledger.start()
    for _ in range(4):
        ledger.record(make_record())
    await ledger.close()
    assert calls == [2, 2, 2, 2] and ledger.dropped == 2 and len(rows(db)) == 2
    text = ledger.metrics.render().decode()
    assert 'linguagate_ledger_dropped_total{reason="write_error"} 2.0' in text
    assert 'linguagate_cost_saved_usd_total{route="rag"} 0.003' in text  # 2 x 600 x $2.50/1M


async def test_lone_surrogates_never_sink_a_batch(tmp_path: Path) -> None:
    # '{"model": "\ud800"}' is valid JSON; SQLite cannot bind the lone surrogate.
    db = tmp_path / "l.sqlite"
    config = make_config(db, batch_size=50, flush_interval_ms=600_000, store_prompts=True)
    ledger = Ledger.from_config(config)
    await ledger.start()
    for i in range(10):
        ledger.record(make_record(request_id=f"good-{i}"))
    bad = "\ud800"
    ledger.record(
        make_record(
            request_id=f"bad-{bad}",
            model=bad,
            error=bad,
            prompt_before=f"a{bad}b",
            prompt_after=bad,
            extra={"k": bad},
        )
    )
    await ledger.close()
    got = {r["request_id"]: r for r in rows(db)}
    assert len(got) == 11 and ledger.dropped == 0 and ledger.written == 11
    row = got["bad-\ufffd"]
    assert (row["model"], row["error"], row["prompt_before"]) == ("\ufffd", "\ufffd", "a\ufffdb")


async def test_one_unbindable_row_is_dropped_alone(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite"
    ledger = Ledger.from_config(make_config(db, batch_size=50, flush_interval_ms=600_000))
    await ledger.start()
    for i in range(5):
        ledger.record(make_record(request_id=f"a{i}"))
    ledger.record(make_record(request_id="huge", completion_tokens=2**70))  # OverflowError
    for i in range(5):
        ledger.record(make_record(request_id=f"b{i}"))
    await ledger.close()
    assert sorted(r["request_id"] for r in rows(db)) == sorted(
        [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    )
    assert ledger.written == 10 and ledger.dropped == 1
    assert 'reason="bad_record"} 1.0' in ledger.metrics.render().decode()


def test_surrogate_model_over_http_keeps_the_batch(stub, proxy_server, tmp_path: Path) -> None:
    import httpx

    from tests.fixtures.servers import make_config as server_config

    db = tmp_path / "l.sqlite"
    proxy = proxy_server(server_config(stub.url, ledger=str(db)))
    url = proxy.url + "/v1/chat/completions"
    good = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
    bad = b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}'
    with httpx.Client(timeout=30) as client:
        for body in [good] * 5 + [bad] + [good] * 5:
            assert client.post(url, content=body).status_code == 200
    ledger = proxy.app.gateway.ledger
    assert ledger.wait_written(11, 20)
    got = rows(db)
    assert len(got) == 11 and ledger.dropped == 0
    assert [r["model"] for r in got].count("\ufffd") == 1
