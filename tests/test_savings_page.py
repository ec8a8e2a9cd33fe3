"""GET /savings, /savings.json and /metrics handlers (app-level, no upstream)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request

from proxy.ledger import Ledger
from proxy.savings_page import savings_routes
from tests.ledger_support import make_config, make_record, start_proxy


def _client(ledger: Ledger | None) -> httpx.AsyncClient:
    def get(request: Request) -> Ledger | None:
        return ledger

    app = Starlette(routes=savings_routes(get))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_savings_endpoints(tmp_path: Path) -> None:
    ledger = Ledger.from_config(make_config(tmp_path / "l.sqlite"))
    await ledger.start()
    try:
        for i in range(4):
            ledger.record(make_record(route=f"r{i % 2}", started_at=make_record().started_at))
        await ledger.flush()
        async with _client(ledger) as client:
            page = await client.get("/savings", params={"since": "all"})
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert page.text.count("<svg") == 2
            data = (await client.get("/savings.json?since=all&by=model")).json()
            assert data["by"] == "model" and data["totals"]["requests"] == 4
            assert data["totals"]["tokens_saved"] == 4 * 600
            bad = await client.get("/savings.json?since=yesterday")
            assert bad.status_code == 400 and "since" in bad.json()["error"]["message"]
            assert (await client.get("/savings?by=tenant")).status_code == 400
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            names = {f.name for f in text_string_to_metric_families(metrics.text)}
            assert {"linguagate_requests", "linguagate_tokens_saved"} <= names
    finally:
        await ledger.close()


async def test_savings_disabled_ledger() -> None:
    ledger = Ledger.from_config(make_config(None))
    async with _client(ledger) as client:
        resp = await client.get("/savings")
        assert resp.status_code == 404
        assert json.loads(resp.text)["error"]["code"] == "no_ledger"
        assert (await client.get("/metrics")).status_code == 200


CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


async def _seed(db: Path) -> None:
    """Two weeks of history so the charts have something to show."""
    ledger = Ledger.from_config(make_config(db))
    await ledger.start()
    now = time.time()
    for i in range(140):
        before = 800 + (i * 137) % 3000
        applied = i % 5 != 0
        ledger.record(
            make_record(
                started_at=now - (i % 14) * 86_400 - 60,
                route=("rag", "support", "agents", "default")[i % 4],
                model=("gpt-4o", "gpt-4o-mini", "gpt-4.1")[i % 3],
                compression="applied" if applied else "none",
                tokens_before=before,
                tokens_after=int(before * (0.35 + (i % 5) / 20)) if applied else before,
            )
        )
    await ledger.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
async def test_savings_page_screenshot(stub: Any, proxy_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    await _seed(db)
    proxy = start_proxy(stub, proxy_server, db)
    async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "word " * 60}]}
        for path in ("/rag/v1/chat/completions", "/v1/chat/completions"):
            assert (await client.post(path, json=body)).status_code == 200
        assert await asyncio.to_thread(proxy.app.gateway.ledger.wait_written, 2, 30)
        page = await client.get("/savings?since=30d")
    assert page.status_code == 200 and "142 requests" in page.text
    shot = tmp_path / "savings.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        f"--screenshot={shot}",
        "--window-size=1280,1600",
        f"{proxy.url}/savings?since=30d",
    ]
    proc = await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert _png_size(data) == (1280, 1600)
    assert len(data) > 30_000  # a blank page compresses to a few kB
    keep = os.environ.get("LINGUAGATE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "savings.png")
