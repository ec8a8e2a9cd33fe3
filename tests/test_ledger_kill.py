"""Crash safety with real processes: two ``linguagate serve`` share one ledger file, one
is SIGKILLed. It may lose only its unflushed batch; the database stays consistent."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.cli import main
from tests.fixtures.servers import free_port

BATCH = 10
SENT = 25  # two full batches written, five records only in memory at the kill


def _serve(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("linguagate", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "proxy.cli"]
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*cmd, "serve", "--config", str(config), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"proxy exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # startup poll of another process, not a synchronisation sleep
    pytest.fail(f"proxy did not start: {log.read_text()[-2000:]}")


def _count(db: Path, where: str = "") -> int:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM requests {where}").fetchone()[0])
    finally:
        conn.close()


def _wait_rows(db: Path, n: int, where: str) -> int:
    """Poll the file another process writes until it holds ``n`` rows (or fail)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            got = _count(db, where)
        except sqlite3.OperationalError:
            got = 0
        if got >= n:
            return got
        time.sleep(0.02)
    pytest.fail(f"ledger did not reach {n} rows")


def _chat(client: httpx.Client, url: str, rid: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    resp = client.post(url + "/v1/chat/completions", json=body, headers={"x-request-id": rid})
    assert resp.status_code == 200


def test_sigkill_loses_at_most_the_unflushed_batch(
    stub: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ledger.sqlite"
    config = tmp_path / "proxy.yaml"
    # A ten-minute interval: only full batches are written before the kill.
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: 0, access_log: false}}
upstreams:
  stub: {{base_url: "{stub.url}", timeout_s: 30}}
routes:
  - {{name: main, prefix: /, upstream: stub}}
ledger: {{path: {db}, batch_size: {BATCH}, flush_interval_ms: 600000}}
"""
    )
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_serve(config, p, log) for p, log in zip(ports, logs, strict=True)]
    try:
        for proc, url, log in zip(procs, urls, logs, strict=True):
            _wait_ready(proc, url, log)
        with httpx.Client(timeout=30) as client:
            for i in range(SENT):
                _chat(client, urls[0], f"a-{i}")
                _chat(client, urls[1], f"b-{i}")
        _wait_rows(db, SENT - SENT % BATCH, "WHERE request_id LIKE 'a-%'")
        procs[0].send_signal(signal.SIGKILL)
        assert procs[0].wait(30) == -signal.SIGKILL
        procs[1].send_signal(signal.SIGTERM)  # graceful: flushes its partial batch
        # uvicorn re-raises the signal after its graceful shutdown
        assert procs[1].wait(60) in (0, -signal.SIGTERM), logs[1].read_text()[-2000:]
        assert "Application shutdown complete" in logs[1].read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = [r[0] for r in conn.execute("SELECT request_id FROM requests")]
    finally:
        conn.close()
    killed = [i for i in ids if i.startswith("a-")]
    assert SENT - BATCH < len(killed) <= SENT  # at most the last unflushed batch lost
    assert len(set(killed)) == len(killed) and set(killed) <= {f"a-{i}" for i in range(SENT)}
    assert sorted(i for i in ids if i.startswith("b-")) == sorted(f"b-{i}" for i in range(SENT))
    assert os.path.getsize(db) > 0
    # The report reads the crashed file.
    assert main(["report", "--ledger", str(db), "--since", "all", "--format", "json"]) == 0
    assert '"requests": ' in capsys.readouterr().out
