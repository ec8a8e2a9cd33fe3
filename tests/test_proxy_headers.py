"""What the upstream sees: no hop-by-hop or internal headers, no proxy fingerprint."""

from __future__ import annotations

import httpx

from tests.fixtures.servers import make_config

URL = "/v1/chat/completions"
BODY = {"model": "m", "messages": []}


def _names(recorded) -> set[str]:
    return {k for k, _ in recorded.headers}


def test_request_headers_filtered(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))
    headers = {
        "user-agent": "my-client/1.2",
        "authorization": "Bearer sk-user",
        "x-linguagate-bypass": "true",
        "x-linguagate-rate": "0.5",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "x-custom": "kept",
        "connection": "keep-alive, x-drop-me",
        "x-drop-me": "1",
        "openai-beta": "assistants=v2",
    }
    response = httpx.post(proxy.url + URL, json=BODY, headers=headers)
    assert response.status_code == 200
    (seen,) = stub.requests
    names = _names(seen)
    assert seen.header("user-agent") == "my-client/1.2"
    assert seen.header("authorization") == "Bearer sk-user"
    assert seen.header("x-custom") == "kept"
    assert seen.header("openai-beta") == "assistants=v2"
    assert seen.header("host") == stub.url.split("/")[2]
    assert not {n for n in names if n.startswith("x-linguagate-")}
    assert not names & {"keep-alive", "te", "x-drop-me", "via", "forwarded", "proxy-authorization"}
    assert not {n for n in names if n.startswith("x-forwarded-")}


def test_no_httpx_defaults_added(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))
    raw = b'{"model":"m","messages":[]}'
    with httpx.Client() as client:
        request = client.build_request("POST", proxy.url + URL, content=raw)
        for name in ("user-agent", "accept", "accept-encoding"):
            del request.headers[name]
        client.send(request)
    names = _names(stub.requests[0])
    assert "user-agent" not in names  # never "python-httpx/..."
    assert "accept" not in names


def test_passthrough_headers_filtered(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))
    httpx.get(proxy.url + "/v1/models", headers={"x-linguagate-key": "k", "user-agent": "ua/1"})
    (seen,) = stub.requests
    assert seen.header("user-agent") == "ua/1"
    assert seen.header("x-linguagate-key") is None


def test_upstream_api_key_replaces_client_auth(stub, proxy_server, monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-server")
    extra = "    api_key: ${STUB_KEY}\n    headers: {x-extra: 'yes', OpenAI-Organization: org-1}"
    proxy = proxy_server(make_config(stub.url, upstream_extra=extra))
    httpx.post(proxy.url + URL, json=BODY, headers={"authorization": "Bearer sk-user"})
    httpx.post(proxy.url + URL, json=BODY)
    for seen in stub.requests:
        assert seen.header("authorization") == "Bearer sk-server"
        assert seen.header("x-extra") == "yes"
        assert seen.header("openai-organization") == "org-1"


def test_prefer_client_key_falls_back_to_api_key(stub, proxy_server):
    extra = "    api_key: sk-fallback\n    prefer_client_key: true"
    proxy = proxy_server(make_config(stub.url, upstream_extra=extra))
    httpx.post(proxy.url + URL, json=BODY, headers={"authorization": "Bearer sk-user"})
    httpx.post(proxy.url + URL, json=BODY)
    first, second = stub.requests
    assert first.header("authorization") == "Bearer sk-user"
    assert second.header("authorization") == "Bearer sk-fallback"


def test_request_id_generated_or_kept(stub, proxy_server):
    proxy = proxy_server(make_config(stub.url))
    generated = httpx.get(proxy.url + "/v1/models").headers["x-request-id"]
    assert len(generated) >= 16
    kept = httpx.get(proxy.url + "/v1/models", headers={"x-request-id": "mine-1"})
    assert kept.headers["x-request-id"] == "mine-1"


def test_response_hop_by_hop_not_relayed(stub, proxy_server):
    from tests.fixtures.servers import json_reply

    stub.push(json_reply({"ok": 1}, headers={"keep-alive": "timeout=99", "x-up": "1"}))
    proxy = proxy_server(make_config(stub.url))
    response = httpx.post(proxy.url + URL, json=BODY)
    assert response.headers["x-up"] == "1"
    assert response.headers.get("keep-alive") != "timeout=99"
