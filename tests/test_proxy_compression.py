"""End to end: real ``openai`` client -> real proxy (tiny ONNX bundle) -> stub upstream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from policies.config import load_config_text
from policies.policy import PolicyRunner
from policies.rewrite import count_prompt
from policies.tokens import encoding_for_model
from tests.fixtures.models import corpus_lines
from tests.fixtures.servers import config_text

MODEL = "gpt-4o-mini"


def prose(n: int, start: int = 0) -> str:
    lines = corpus_lines()
    return " ".join(lines[(start + i) % len(lines)] for i in range(n))


DOC = prose(8)
OTHER = prose(8, start=20)


def yaml_config(stub_url: str, bundle: Path, rules: str, **route: Any) -> str:
    extra = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in route.items())
    model = f"model:\n  path: {bundle}\n  device: cpu\n"
    return config_text(stub_url, server_extra=model, route_extra=extra + rules)


@pytest.fixture
def start(stub: Any, proxy_server: Any, tiny_bundle_xlmr: Path):
    def factory(rules: str, **route: Any) -> tuple[Any, openai.OpenAI]:
        config = load_config_text(yaml_config(stub.url, tiny_bundle_xlmr, rules, **route))
        server = proxy_server(config)
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)
        return server, client

    return factory


def chat(client: openai.OpenAI, messages: list[dict[str, Any]], **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, **kw)  # type: ignore[call-overload]


def sent_messages(stub: Any, index: int = -1) -> list[dict[str, Any]]:
    return stub.requests[index].json()["messages"]


USER_RULE = """    compress:
      - roles: [user]
        rate: 0.5
        min_tokens: 20
"""


def test_roles_headers_and_token_counts(start: Any, stub: Any) -> None:
    _, client = start(USER_RULE)
    messages = [
        {"role": "system", "content": OTHER},
        {"role": "user", "content": DOC},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": DOC},
    ]
    raw = chat(client, messages)
    assert raw.headers["x-linguagate-compression"] == "applied"
    before = int(raw.headers["x-linguagate-tokens-before"])
    after = int(raw.headers["x-linguagate-tokens-after"])
    enc = encoding_for_model(MODEL)
    upstream = sent_messages(stub)
    assert before == count_prompt(messages, enc) and after == count_prompt(upstream, enc)
    assert after < before
    assert upstream[0] == messages[0] and upstream[2] == messages[2] and upstream[3] == messages[3]
    assert upstream[1]["content"] != DOC and len(upstream[1]["content"]) < len(DOC)
    assert raw.parse().choices[0].message.content == "Hello!"


def test_tool_outputs_tags_and_multimodal(start: Any, stub: Any) -> None:
    rules = """    compress:
      - roles: [user]
        tags: [doc]
        rate: 0.5
        min_tokens: 10
        strip_tags: true
      - roles: []
        tools: [search]
        rate: 0.5
        min_tokens: 10
"""
    _, client = start(rules)
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q":"a"}'}},
        {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": '{"k":1}'}},
    ]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    tagged = f'Read this.\n<doc id="1">{DOC}</doc>\nThanks.'
    messages = [
        {"role": "user", "content": [{"type": "text", "text": tagged}, image]},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": OTHER},
        {"role": "tool", "tool_call_id": "c2", "content": OTHER},
        {"role": "user", "content": "Summarise."},
    ]
    raw = chat(client, messages)
    assert raw.headers["x-linguagate-compression"] == "applied"
    up = sent_messages(stub)
    assert len(up) == len(messages) and [m["role"] for m in up] == [m["role"] for m in messages]
    text = up[0]["content"][0]["text"]
    assert text.startswith("Read this.\n") and text.endswith("\nThanks.") and "<doc" not in text
    assert len(text) < len(tagged) and up[0]["content"][1] == image
    assert up[1] == messages[1]  # tool_calls and arguments untouched
    assert up[2]["tool_call_id"] == "c1" and len(up[2]["content"]) < len(OTHER)
    assert up[3] == messages[3] and up[4] == messages[4]


def test_protections_survive_the_real_model(start: Any, stub: Any) -> None:
    rules = """    compress:
      - roles: [user]
        rate: 0.2
        min_tokens: 10
        protect: ['TICKET-\\d+']
"""
    _, client = start(rules)
    code = "```python\nprint('keep me exactly')\n```"
    items = [
        "TICKET-42",
        "deploy_service_v2",
        "https://docs.example.com/a/b?x=1",
        "/etc/linguagate/config.yaml",
        "ops@example.com",
        "9f86d081884c7d65",
    ]
    text = f"{DOC} {' '.join(items)} {OTHER}\n{code}\n{DOC}"
    json_tool = json.dumps({"rows": [{"id": 7, "name": OTHER}]})
    messages = [
        {"role": "user", "content": text},
        {"role": "user", "content": json_tool},
        {"role": "user", "content": "q"},
    ]
    chat(client, messages)
    up = sent_messages(stub)
    out = up[0]["content"]
    assert len(out) < len(text)
    for item in items:
        assert item in out
    assert f"\n{code}\n" in out
    assert up[1]["content"] == json_tool


def test_ranges_choose_amount_by_size(start: Any, stub: Any) -> None:
    rules = """    compress:
      - roles: [user]
        keep_last_user: false
        min_tokens: 0
        ranges:
          - {min_tokens: 0, max_tokens: 30, rate: 1.0}
          - {min_tokens: 31, rate: 0.4}
"""
    _, client = start(rules)
    short = "A short note about the budget."
    chat(client, [{"role": "user", "content": short}, {"role": "user", "content": DOC}])
    up = sent_messages(stub)
    assert up[0]["content"] == short and len(up[1]["content"]) < len(DOC)


def test_nothing_to_do_forwards_exact_bytes(start: Any, stub: Any) -> None:
    server, _ = start(USER_RULE)
    raw = (
        b'{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "hi \\u00e9"}],'
        b' "temperature": 1.0}'
    )
    resp = httpx.post(
        server.url + "/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json", "authorization": "Bearer sk-test"},
    )
    assert resp.status_code == 200 and resp.headers["x-linguagate-compression"] == "none"
    assert stub.requests[-1].body == raw


def test_upstream_gets_exactly_the_compressed_body_and_is_deterministic(
    start: Any, stub: Any, tiny_bundle_xlmr: Path
) -> None:
    server, _ = start(USER_RULE)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": DOC}, {"role": "user", "content": "q"}],
        "temperature": 0,
    }
    raw = json.dumps(body).encode()
    for _ in range(2):
        resp = httpx.post(
            server.url + "/v1/chat/completions",
            content=raw,
            headers={"content-type": "application/json", "authorization": "Bearer sk-test"},
        )
        assert resp.headers["x-linguagate-compression"] == "applied"
    first, second = stub.requests[0].body, stub.requests[1].body
    assert first == second

    async def expected() -> bytes:
        config = server.config
        runner = PolicyRunner.from_config(config)
        await runner.start()
        try:
            route = config.routes[0]
            outcome = await runner.apply(route, config.upstreams["stub"], body, raw, {})
        finally:
            await runner.close()
        return outcome.body

    assert first == asyncio.run(expected())
    assert (
        first == json.dumps(json.loads(first), ensure_ascii=False, separators=(",", ":")).encode()
    )


class SlowEngine:
    """Wraps the real engine and sleeps first: a compressor that misses its deadline."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay

    async def compress(self, context: Any, **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(self.delay)
        return await self.inner.compress(context, **kwargs)

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.parametrize("on_error", ["fail_open", "fail_closed"])
def test_deadline_exceeded(start: Any, stub: Any, on_error: str) -> None:
    server, client = start(USER_RULE, deadline_ms=50, on_error=on_error)
    runner = server.app.gateway.runner
    runner.engine = SlowEngine(runner.engine, delay=5.0)
    messages = [{"role": "user", "content": DOC}, {"role": "user", "content": "q"}]
    if on_error == "fail_open":
        raw = chat(client, messages)
        assert raw.headers["x-linguagate-compression"] == "error:deadline"
        assert sent_messages(stub) == messages
        assert raw.headers["x-linguagate-tokens-before"] == raw.headers["x-linguagate-tokens-after"]
    else:
        with pytest.raises(openai.APIStatusError) as info:
            chat(client, messages)
        assert info.value.status_code == 502
        assert info.value.response.headers["x-linguagate-compression"] == "error:deadline"
        assert "compression" in info.value.message
        assert stub.requests == []


def test_bypass_and_rate_headers(start: Any, stub: Any) -> None:
    _, client = start(USER_RULE, allow_rate_header=True)
    messages = [{"role": "user", "content": DOC}, {"role": "user", "content": "q"}]
    raw = chat(client, messages, extra_headers={"x-linguagate-bypass": "true"})
    assert raw.headers["x-linguagate-compression"] == "bypassed"
    assert sent_messages(stub) == messages
    assert stub.requests[-1].header("x-linguagate-bypass") is None
    chat(client, messages, extra_headers={"x-linguagate-rate": "0.9"})
    light = sent_messages(stub)[0]["content"]
    chat(client, messages, extra_headers={"x-linguagate-rate": "0.2"})
    hard = sent_messages(stub)[0]["content"]
    assert len(hard) < len(light) < len(DOC)
    count = len(stub.requests)
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, messages, extra_headers={"x-linguagate-rate": "2"})
    assert "x-linguagate-rate" in info.value.message and len(stub.requests) == count


def test_streaming_with_compression_has_headers(start: Any, stub: Any) -> None:
    _, client = start(USER_RULE)
    messages = [{"role": "user", "content": DOC}, {"role": "user", "content": "q"}]
    raw = chat(client, messages, stream=True)
    assert raw.headers["x-linguagate-compression"] == "applied"
    before = int(raw.headers["x-linguagate-tokens-before"])
    assert int(raw.headers["x-linguagate-tokens-after"]) < before
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text == "Hello!"
    assert len(sent_messages(stub)[0]["content"]) < len(DOC)


def test_streaming_with_stream_options_keeps_compression(start: Any, stub: Any) -> None:
    """The usage injection must patch the compressed body, not the client's original."""
    _, client = start(USER_RULE)
    messages = [{"role": "user", "content": DOC}, {"role": "user", "content": "q"}]
    raw = chat(client, messages, stream=True, stream_options={"include_usage": False})
    assert raw.headers["x-linguagate-compression"] == "applied"
    list(raw.parse())
    sent = stub.requests[-1].json()
    assert sent["stream_options"] == {"include_usage": True}
    assert len(sent["messages"][0]["content"]) < len(DOC)
    enc = encoding_for_model(MODEL)
    assert int(raw.headers["x-linguagate-tokens-after"]) == count_prompt(sent["messages"], enc)
