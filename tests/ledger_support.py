"""Helpers for the ledger/report tests: records and configs built directly."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

from policies.config import Config, LedgerConfig, PriceEntry, load_config_text
from proxy.records import RequestRecord
from tests.fixtures.servers import (
    Recorded,
    Reply,
    chat_chunks,
    chat_completion,
    free_port,
    json_reply,
    sse_reply,
)
from tests.policy_fakes import FakeEngine

_ids = itertools.count()


def make_config(
    path: Path | None,
    *,
    batch_size: int = 200,
    flush_interval_ms: float = 20.0,
    store_prompts: bool = False,
    prices: tuple[PriceEntry, ...] = (),
) -> Config:
    return Config(
        ledger=LedgerConfig(
            path=None if path is None else str(path),
            store_prompts=store_prompts,
            batch_size=batch_size,
            flush_interval_ms=flush_interval_ms,
        ),
        prices=prices,
    )


def make_record(**kw: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "request_id": f"req-{next(_ids)}",
        "started_at": 1_700_000_000.0,
        "route": "rag",
        "upstream": "openai",
        "model": "gpt-4o",
        "status": 200,
        "compression": "applied",
        "tokens_before": 1000,
        "tokens_after": 400,
        "encoding": "o200k_base",
        "prompt_tokens": 410,
        "cached_tokens": 0,
        "completion_tokens": 20,
        "compression_ms": 12.0,
        "overhead_ms": 14.0,
        "upstream_ttfb_ms": 100.0,
        "total_ms": 250.0,
    }
    base.update(kw)
    return RequestRecord(**base)


def rows(path: Path, sql: str = "SELECT * FROM requests ORDER BY id") -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def proxy_config(stub_url: str, db: Path) -> Any:
    return load_config_text(
        f"""
server: {{host: 127.0.0.1, port: 0, access_log: false}}
model: {{path: {db.parent / "no-model"}}}
upstreams:
  stub: {{base_url: "{stub_url}", timeout_s: 30}}
  dead: {{base_url: "http://127.0.0.1:{free_port()}/v1", timeout_s: 5, connect_timeout_s: 5}}
routes:
  - name: rag
    prefix: /rag
    upstream: stub
    compress: [{{roles: [user], rate: 0.5, min_tokens: 10, keep_last_user: false}}]
  - name: dead
    prefix: /dead
    upstream: dead
  - name: main
    prefix: /
    upstream: stub
ledger: {{path: {db}, batch_size: 25, flush_interval_ms: 20}}
""",
        "<ledger-test>",
    )


def usage_for(rec: Recorded) -> dict[str, Any]:
    """Per-request usage derived from the body the stub received (so sums can be checked)."""
    prompt = len(rec.body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": 3,
        "total_tokens": prompt + 3,
        "prompt_tokens_details": {"cached_tokens": prompt // 4},
    }


def install_usage_stub(stub: Any) -> None:
    def default(rec: Recorded) -> Reply:
        body = rec.json()
        usage = usage_for(rec)
        if body.get("stream"):
            wants = (body.get("stream_options") or {}).get("include_usage") is True
            return sse_reply(chat_chunks(["Hel", "lo"], usage=usage if wants else None))
        return json_reply(chat_completion(usage=usage))

    stub._default = default


def start_proxy(stub: Any, proxy_server: Any, db: Path) -> Any:
    install_usage_stub(stub)
    proxy = proxy_server(proxy_config(stub.url, db))
    proxy.app.gateway.runner.engine = FakeEngine()  # the real policy, a fake classifier
    return proxy
