"""Non-chat requests under {prefix}/v1 are forwarded unchanged."""

from __future__ import annotations

import dataclasses
import logging

import httpx
import openai
import pytest

from tests.fixtures.servers import json_reply, make_config


def test_models_with_openai_client(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]
    assert stub.requests[0].method == "GET" and stub.requests[0].path == "/v1/models"


def test_embeddings_with_query_string(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))
    raw = b'{"input": "hi",  "model": "text-embedding-3-small"}'
    response = httpx.post(proxy.url + "/v1/embeddings?api-version=2024-02&x=%20y", content=raw)
    assert response.status_code == 200
    (seen,) = stub.requests
    assert seen.path == "/v1/embeddings"
    assert seen.query == b"api-version=2024-02&x=%20y"
    assert seen.body == raw
    assert response.json()["body"] == raw.decode()


def test_streamed_upload_byte_faithful(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))
    payload = bytes(range(256)) * 8000  # ~2 MB: streamed, not buffered whole

    def chunks():
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    response = httpx.put(proxy.url + "/v1/files/upload", content=chunks())
    assert response.status_code == 200
    assert stub.requests[0].body == payload
    assert stub.requests[0].method == "PUT"


def test_status_and_headers_relayed(stub, proxy_server):
    stub.push(json_reply({"deleted": True}, status=202, headers={"x-ratelimit-remaining": "9"}))
    proxy = proxy_server(make_config(stub.url))
    response = httpx.delete(proxy.url + "/v1/files/f-1")
    assert response.status_code == 202
    assert response.headers["x-ratelimit-remaining"] == "9"
    assert response.json() == {"deleted": True}
    assert stub.requests[0].method == "DELETE"


def test_prefix_routes(stub, proxy_server):
    from policies.config import load_config_text

    config = load_config_text(
        f"""
server: {{access_log: false}}
upstreams: {{stub: {{base_url: "{stub.url}"}}}}
routes:
  - {{name: root, prefix: /, upstream: stub}}
  - {{name: rag, prefix: /rag, upstream: stub}}
ledger: {{path: null}}
"""
    )
    proxy = proxy_server(config)
    rag = httpx.post(proxy.url + "/rag/v1/chat/completions", json={"model": "m", "messages": []})
    root = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []})
    assert rag.headers["x-linguagate-route"] == "rag"
    assert root.headers["x-linguagate-route"] == "root"
    httpx.get(proxy.url + "/rag/v1/models")
    assert [r.path for r in stub.requests] == ["/v1/chat/completions"] * 2 + ["/v1/models"]


def test_health_and_ready(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))
    assert httpx.get(proxy.url + "/healthz").status_code == 200
    assert httpx.get(proxy.url + "/readyz").json() == {"status": "ready"}
    assert stub.requests == []


def test_readyz_503_until_runner_ready(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))

    class NotReady:
        ready = False

    proxy.app.gateway.runner = NotReady()
    assert httpx.get(proxy.url + "/readyz").status_code == 503


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/files/a%2Fb/content",  # one segment upstream, not two
        "/v1/models/a%3Fx=1",  # stays in the path, no query injected
        "/v1/files/x%23y",  # not cut at a fragment
        "/v1/files/caf%C3%A9",
        "/v1/files/100%25",
    ],
)
def test_path_forwarded_with_the_clients_encoding(stub, proxy_server, raw):
    proxy = proxy_server(make_config(stub.url))
    response = httpx.get(proxy.url + raw)
    assert response.status_code == 200
    (seen,) = stub.requests
    assert seen.raw_path == raw.encode()
    assert seen.query == b""


def test_prefix_route_forwards_raw_rest(stub, proxy_server):
    config = make_config(stub.url, route_extra="  - {name: rag, prefix: /rag, upstream: stub}")
    proxy = proxy_server(config)
    assert httpx.get(proxy.url + "/rag/v1/files/a%2Fb?q=%23").status_code == 200
    (seen,) = stub.requests
    assert (seen.raw_path, seen.query) == (b"/v1/files/a%2Fb", b"q=%23")


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/files/%2e%2e/%2e%2e/admin",  # would climb out of the upstream's base path
        "/v1/files/%2E%2E%2Fadmin",
        "/v1/%2e/models",
        "/v1/models%00x",
        "/v1/models/a%0Ab",
        "/v1/models/a%7Fb",
    ],
)
def test_bad_paths_are_400_invalid_path(stub, proxy_server, raw):
    config = make_config(stub.url, upstream_extra="    api_key: sk-upstream")
    proxy = proxy_server(config)
    with httpx.Client() as client:
        request = client.build_request("GET", proxy.url + "/")
        request.url = request.url.copy_with(raw_path=raw.encode())
        response = client.send(request)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_path"
    assert set(response.json()["error"]) == {"message", "type", "code"}
    assert stub.requests == []


def test_access_log_escapes_control_characters(stub, proxy_server, caplog):
    config = make_config(stub.url)
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, access_log=True))
    proxy = proxy_server(config)
    with caplog.at_level(logging.INFO, logger="linguagate.access"):
        response = httpx.get(
            proxy.url + "/v1/models/a%0Ab%1B%20c", headers={"x-request-id": "r\tfake=1"}
        )
        assert response.status_code == 400
        proxy.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "linguagate.access"]
    assert len(lines) == 1
    assert "path=/v1/models/a\\x0ab\\x1b\\x20c " in lines[0]
    assert "request_id=r\\x09fake=1" in lines[0]
    assert all(c.isprintable() for c in lines[0])
