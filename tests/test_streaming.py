"""SSE through the proxy: unbuffered relay, usage injection/removal, disconnects."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest

from tests.fixtures.servers import chat_chunks, make_config, sse_reply, usage_chunk

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def proxy(stub, proxy_server):
    return proxy_server(make_config(stub.url))


def _events(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


def test_stream_is_not_buffered(stub, proxy):
    release = threading.Event()
    stub.push(sse_reply(chat_chunks(["first", "second"]), gates={2: release}))
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
        timeout=30,
    ) as response:
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["x-linguagate-compression"] == "none"
        received = ""
        lines = response.iter_lines()
        while '"first"' not in received:
            received += next(lines)  # arrives while the stub still withholds "second"
        assert not release.is_set()
        release.set()
        rest = "".join(lines)
    assert '"second"' in rest and "[DONE]" in rest


def test_openai_stream_without_usage_hides_injected_usage(stub, proxy):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert all(c.choices for c in chunks)  # the usage-only chunk was removed
    sent = stub.requests[0].json()
    assert sent["stream_options"] == {"include_usage": True}


async def test_async_stream_with_usage_relays_it(stub, proxy):
    async with openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 11


def test_client_asked_usage_body_bytes_unchanged(stub, proxy):
    raw = b'{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
    stub.push(sse_reply(chat_chunks(["x"], include_usage=True)))
    expected = b"".join(
        b"data: " + json.dumps(e).encode() + b"\n\n" for e in chat_chunks(["x"], include_usage=True)
    )
    response = httpx.post(proxy.url + "/v1/chat/completions", content=raw)
    assert stub.requests[0].body == raw
    assert response.content == expected + b"data: [DONE]\n\n"


def test_injection_keeps_other_bytes(stub, proxy):
    raw = b'{ "model":"m", "stream": true, "messages":[ ] }'
    response = httpx.post(proxy.url + "/v1/chat/completions", content=raw)
    assert response.status_code == 200
    sent = stub.requests[0].body
    injected = b'"stream_options":{"include_usage":true},'
    assert sent == b"{" + injected + b' "model":"m", "stream": true, "messages":[ ] }'
    assert "usage" not in response.text.replace('"usage": null', "")


def test_stream_usage_false_upstream_not_injected(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url, upstream_extra="    stream_usage: false"))
    raw = b'{"model":"m","stream":true,"messages":[]}'
    httpx.post(proxy.url + "/v1/chat/completions", content=raw)
    assert stub.requests[0].body == raw


def test_usage_event_split_across_chunks_crlf(stub, proxy):
    usage = json.dumps(usage_chunk()).encode()
    text = json.dumps(chat_chunks(["caf\u00e9 \u2603"])[1], ensure_ascii=False).encode()
    cut = text.index("\u2603".encode()) + 1  # inside the snowman's UTF-8 bytes
    events = [
        b"data: " + text[:cut],
        text[cut:] + b"\r\n\r\n",
        b"data: " + usage[:20],
        usage[20:] + b"\r\n",
        b"\r\ndata: [DONE]\r\n\r\n",
    ]
    stub.push(sse_reply(events, done=False))
    response = httpx.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "m", "messages": [], "stream": True},
    )
    assert response.content == b"data: " + text + b"\r\n\r\ndata: [DONE]\r\n\r\n"


def test_upstream_disconnect_mid_stream_ends_cleanly(stub, proxy):
    stub.push(sse_reply(chat_chunks(["a", "b", "c"]), disconnect_after=2))
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json={"model": "m", "messages": [], "stream": True},
    ) as response:
        body = response.read()  # no exception: the proxy finished its response
    assert response.status_code == 200
    assert _events(body.decode())[:2] and b'"b"' not in body


def test_client_disconnect_cancels_upstream(stub, proxy):
    hold = threading.Event()
    stub.push(sse_reply(chat_chunks(["a", "b"]), gates={2: hold}))
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json={"model": "m", "messages": [], "stream": True},
    ) as response:
        next(response.iter_lines())
    # closing the client connection must close the proxy's upstream request
    assert stub.disconnected.wait(20)
    hold.set()


def test_client_disconnect_before_upstream_headers(stub, proxy):
    slow = threading.Event()
    reply = sse_reply(chat_chunks(["a"]))
    reply.before = slow
    stub.push(reply)
    client = httpx.Client(timeout=httpx.Timeout(30, read=0.2))
    with pytest.raises(httpx.ReadTimeout):
        client.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []})
    client.close()
    assert stub.disconnected.wait(20)
    slow.set()
