"""Chat completions through the real proxy with the official openai client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.fixtures.servers import chat_completion, json_reply, make_config


@pytest.fixture
def proxy(stub, proxy_server):
    return proxy_server(make_config(stub.url))


MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_sync_client_roundtrip(stub, proxy):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-client", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello!"
    assert completion.model_dump(exclude_unset=True) == chat_completion()
    assert raw.headers["x-linguagate-route"] == "main"
    assert raw.headers["x-linguagate-compression"] == "none"
    for name in ("tokens-before", "tokens-after", "overhead-ms"):
        assert "x-linguagate-" + name in raw.headers
    (seen,) = stub.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.header("authorization") == "Bearer sk-client"


async def test_async_client_roundtrip(stub, proxy):
    async with openai.AsyncOpenAI(
        base_url=proxy.url + "/v1", api_key="sk-client", max_retries=0
    ) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello!"


def test_body_bytes_forwarded_unchanged(stub, proxy):
    # Odd spacing, key order and unicode escapes: re-serialising would change them.
    raw = (
        b'{ "messages" : [{"role":"user","content":"caf\\u00e9  \xe2\x98\x83"}],\n'
        b' "model":"gpt-4o-mini" ,"n":1}'
    )
    response = httpx.post(
        proxy.url + "/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json", "authorization": "Bearer k"},
    )
    assert response.status_code == 200
    assert stub.requests[0].body == raw


def test_upstream_error_relayed(stub, proxy):
    error = {"error": {"message": "nope", "type": "invalid_request_error", "code": "x"}}
    stub.push(json_reply(error, status=422, headers={"x-upstream": "1"}))
    response = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []})
    assert response.status_code == 422
    assert response.json() == error
    assert response.headers["x-upstream"] == "1"
    assert response.headers["x-linguagate-route"] == "main"


def test_response_bytes_equal_stub(stub, proxy):
    body = json.dumps(chat_completion("exact bytes"), indent=3).encode()
    stub.push(json_reply(body))
    response = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []})
    assert response.content == body
