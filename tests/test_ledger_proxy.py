"""The ledger behind the real proxy: 200 concurrent mixed requests, stream usage, report.

Compression runs through the real policy with the deterministic fake engine
(tests/policy_fakes.py) swapped in after startup, so no ONNX model is needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.ledger_db import open_reader
from proxy.report import build_report
from tests.ledger_support import install_usage_stub, proxy_config, rows, start_proxy, usage_for
from tests.policy_fakes import FakeEngine

N = 200
LONG = " ".join(f"Paragraph {i} explains the quarterly figures in some detail." for i in range(12))


def _metric_sums(text: str) -> dict[str, float]:
    """Sample name -> sum over its label sets, from a real /metrics scrape."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def _events(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


async def _one(client: httpx.AsyncClient, i: int) -> dict[str, Any]:
    kind = ("stream_rag", "stream_usage", "bypass", "applied", "dead", "bad_json", "plain")[i % 7]
    rid = f"req-{i:03d}"
    headers = {"x-request-id": rid, "authorization": "Bearer sk-test"}
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": LONG}]}
    path = "/rag/v1/chat/completions"
    if kind == "stream_rag":
        body["stream"] = True
    elif kind == "stream_usage":
        body.update(model="gpt-4o-mini", stream=True, stream_options={"include_usage": True})
        path = "/v1/chat/completions"
    elif kind == "bypass":
        headers["x-linguagate-bypass"] = "true"
    elif kind == "dead":
        path = "/dead/v1/chat/completions"
    elif kind == "plain":
        body["model"] = "gpt-4o-mini"
        path = "/v1/chat/completions"
    content = b'{"model": "gpt-4o", "messages": [' if kind == "bad_json" else json.dumps(body)
    resp = await client.post(path, content=content, headers=headers)
    return {
        "rid": rid,
        "kind": kind,
        "status": resp.status_code,
        "headers": resp.headers,
        "text": resp.text,
    }


async def test_ledger_rows_equal_requests_under_concurrency(
    stub: Any, proxy_server: Any, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.sqlite"
    proxy = start_proxy(stub, proxy_server, db)
    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    async with httpx.AsyncClient(base_url=proxy.url, limits=limits, timeout=60) as client:
        results = await asyncio.gather(*(_one(client, i) for i in range(N)))
    ledger = proxy.app.gateway.ledger
    assert await asyncio.to_thread(ledger.wait_written, N, 60)
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        scrape = (await client.get("/metrics")).text
    proxy.stop()  # graceful: lifespan closes (flushes) the ledger
    got = {r["request_id"]: r for r in rows(db)}
    assert len(got) == N == ledger.written and ledger.dropped == 0
    assert set(got) == {r["rid"] for r in results}

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for res in results:
        by_kind.setdefault(res["kind"], []).append(res)
        row = got[res["rid"]]
        assert row["status"] == res["status"]
        assert row["compression"] == res["headers"]["x-linguagate-compression"]
        assert row["route"] == res["headers"].get("x-linguagate-route", row["route"])
    assert {res["status"] for res in by_kind["dead"]} == {502}
    assert {res["status"] for res in by_kind["bad_json"]} == {400}
    assert {got[r["rid"]]["compression"] for r in by_kind["applied"]} == {"applied"}
    assert {got[r["rid"]]["compression"] for r in by_kind["bypass"]} == {"bypassed"}
    for res in by_kind["applied"] + by_kind["stream_rag"]:
        row = got[res["rid"]]
        assert row["tokens_before"] > row["tokens_after"] > 0
        assert row["cost_saved_usd"] == pytest.approx(
            (row["tokens_before"] - row["tokens_after"]) * 2.50 / 1e6
        )
    assert all(got[r["rid"]]["stream"] == 1 for r in by_kind["stream_usage"])

    # Report totals equal sums computed from the stub's own records.
    stub_usage = [usage_for(rec) for rec in stub.requests]
    conn = open_reader(db)
    try:
        report = build_report(conn, None, "route")
        by_model = {r["key"]: r for r in build_report(conn, None, "model")["rows"]}
    finally:
        conn.close()
    totals = report["totals"]
    assert totals["requests"] == N
    assert len(stub.requests) == N - len(by_kind["dead"]) - len(by_kind["bad_json"])
    assert totals["provider_prompt_tokens"] == sum(u["prompt_tokens"] for u in stub_usage)
    assert totals["compressed_requests"] == len(by_kind["applied"]) + len(by_kind["stream_rag"])
    mini = [rec for rec in stub.requests if rec.json()["model"] == "gpt-4o-mini"]
    assert by_model["gpt-4o-mini"]["requests"] == len(mini)
    seen_saved = sum(
        int(r["headers"]["x-linguagate-tokens-before"])
        - int(r["headers"]["x-linguagate-tokens-after"])
        for r in results
        if r["headers"].get("x-linguagate-tokens-before", "unknown") != "unknown"
    )
    assert totals["tokens_saved"] == seen_saved > 0
    metrics = _metric_sums(scrape)
    assert metrics["linguagate_requests_total"] == N
    assert metrics["linguagate_ledger_written_total"] == N
    assert metrics["linguagate_tokens_saved_total"] == totals["tokens_saved"]
    assert metrics["linguagate_provider_prompt_tokens_total"] == totals["provider_prompt_tokens"]
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in stub_usage)
    assert sum(r["cached_tokens"] or 0 for r in got.values()) == cached


def test_stream_usage_injection_lands_in_ledger(stub: Any, proxy_server: Any, tmp_path: Path):
    """Usage asked for by the proxy is recorded but never shown to a client that did not ask."""
    db = tmp_path / "ledger.sqlite"
    proxy = start_proxy(stub, proxy_server, db)
    base = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        silent = client.post("/v1/chat/completions", json=base, headers={"x-request-id": "a"})
        asked = client.post(
            "/v1/chat/completions",
            json={**base, "stream_options": {"include_usage": True}},
            headers={"x-request-id": "b"},
        )
    assert proxy.app.gateway.ledger.wait_written(2, 30)
    proxy.stop()
    sent_a, sent_b = stub.requests
    assert sent_a.json()["stream_options"] == {"include_usage": True}  # injected
    assert not any("usage" in e and e["usage"] for e in _events(silent.text))  # removed
    assert _events(asked.text)[-1]["usage"] == usage_for(sent_b)  # kept: the client asked
    got = {r["request_id"]: r for r in rows(db)}
    for rid, sent in (("a", sent_a), ("b", sent_b)):
        usage = usage_for(sent)
        row = got[rid]
        assert row["prompt_tokens"] == usage["prompt_tokens"]
        assert row["cached_tokens"] == usage["prompt_tokens_details"]["cached_tokens"]
        assert row["completion_tokens"] == 3
        prompt, cached = usage["prompt_tokens"], usage["prompt_tokens"] // 4
        expected = ((prompt - cached) * 0.15 + cached * 0.075 + 3 * 0.60) / 1e6
        assert row["cost_after_usd"] == pytest.approx(expected)


@pytest.mark.parametrize("store", [False, True])
def test_prompts_are_stored_only_when_configured(
    stub: Any, proxy_server: Any, tmp_path: Path, store: bool
) -> None:
    db = tmp_path / "ledger.sqlite"
    install_usage_stub(stub)
    config = proxy_config(stub.url, db)
    config = dataclasses.replace(
        config, ledger=dataclasses.replace(config.ledger, store_prompts=store)
    )
    proxy = proxy_server(config)
    proxy.app.gateway.runner.engine = FakeEngine()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": LONG}]}
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        resp = client.post("/rag/v1/chat/completions", json=body, headers={"x-request-id": "p"})
    assert resp.headers["x-linguagate-compression"] == "applied"
    assert proxy.app.gateway.ledger.wait_written(1, 30)
    proxy.stop()
    (row,) = rows(db)
    if not store:
        assert row["prompt_before"] is None and row["prompt_after"] is None
        return
    assert json.loads(row["prompt_before"]) == body["messages"]
    assert json.loads(row["prompt_after"]) == stub.requests[0].json()["messages"]
    assert row["prompt_after"] != row["prompt_before"]
