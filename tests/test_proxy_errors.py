"""Every proxy-made error status, OpenAI-shaped, and one record per request."""

from __future__ import annotations

import asyncio
import threading

import httpx
import openai
import pytest

from proxy.records import RequestRecord
from tests.fixtures.servers import Reply, free_port, make_config

URL = "/v1/chat/completions"


class ListSink:
    """Collects records; ``records`` waits for in-flight ones (they land after the response)."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._cond = threading.Condition()
        self.expected = 0

    def record(self, record: RequestRecord) -> None:
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()

    def wait(self, n: int) -> list[RequestRecord]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self._records) >= n, 20), self._records
            return list(self._records)


def _start(proxy_server, config):
    proxy = proxy_server(config)
    sink = ListSink()
    proxy.app.gateway.sink = sink
    return proxy, sink


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    err = response.json()["error"]
    assert set(err) == {"message", "type", "code"}
    assert err["code"] == code
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'{"model": "m", "messages": {"role": "user"}}', "invalid_messages"),
        (b'{"model": 5, "messages": []}', "invalid_field"),
        (b'{"model": "m", "messages": [], "stream": "yes"}', "invalid_field"),
        (b'{"model": "m", "messages": [], "stream_options": []}', "invalid_field"),
    ],
)
def test_400_bad_body(stub, proxy_server, body, code):
    proxy, sink = _start(proxy_server, make_config(stub.url))
    _error(httpx.post(proxy.url + URL, content=body), 400, code)
    assert stub.requests == []
    (rec,) = sink.wait(1)
    assert rec.status == 400 and rec.error == code


def test_400_through_openai_client(stub, proxy_server):
    proxy, _ = _start(proxy_server, make_config(stub.url))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages="not a list")  # type: ignore[arg-type]
    assert info.value.code == "invalid_messages"


def test_404_no_route_for_model(stub, proxy_server):
    config = make_config(stub.url, route_extra='    models: ["gpt-4o*"]')
    proxy, sink = _start(proxy_server, config)
    _error(httpx.post(proxy.url + URL, json={"model": "claude", "messages": []}), 404, "no_route")
    assert httpx.post(proxy.url + URL, json={"model": "gpt-4o", "messages": []}).status_code == 200
    assert [r.status for r in sink.wait(2)] == [404, 200]


def test_404_outside_v1(stub, proxy_server):
    proxy, _ = _start(proxy_server, make_config(stub.url))
    _error(httpx.get(proxy.url + "/nothing/here"), 404, "no_route")


def test_401_proxy_keys(stub, proxy_server):
    config = make_config(stub.url, route_extra="    keys: [pk-1, pk-2]")
    proxy, sink = _start(proxy_server, config)
    body = {"model": "m", "messages": []}
    _error(httpx.post(proxy.url + URL, json=body), 401, "invalid_proxy_key")
    bad = {"authorization": "Bearer nope"}
    _error(httpx.post(proxy.url + URL, json=body, headers=bad), 401, "invalid_proxy_key")
    _error(httpx.get(proxy.url + "/v1/models"), 401, "invalid_proxy_key")
    ok = httpx.post(proxy.url + URL, json=body, headers={"authorization": "Bearer pk-2"})
    assert ok.status_code == 200
    both = {"x-linguagate-key": "pk-1", "authorization": "Bearer sk-user"}
    assert httpx.post(proxy.url + URL, json=body, headers=both).status_code == 200
    twice = {"x-linguagate-key": "pk-1", "authorization": "Bearer pk-2"}
    assert httpx.post(proxy.url + URL, json=body, headers=twice).status_code == 200
    first, second, third = stub.requests
    assert first.header("authorization") is None  # the proxy key never goes upstream
    assert second.header("authorization") == "Bearer sk-user"
    assert second.header("x-linguagate-key") is None
    assert third.header("authorization") is None  # not even when both headers carry one
    assert [r.status for r in sink.wait(5)] == [401, 401, 200, 200, 200]


def test_deeply_nested_json_is_a_400(stub, proxy_server):
    proxy, sink = _start(proxy_server, make_config(stub.url))
    _error(httpx.post(proxy.url + URL, content=b"[" * 100_000), 400, "invalid_json")
    assert [r.status for r in sink.wait(1)] == [400]


def test_413_content_length(stub, proxy_server):
    config = make_config(stub.url, server_extra="  max_body_mb: 0.001")
    proxy, sink = _start(proxy_server, config)
    big = b'{"model":"m","messages":[],"x":"' + b"a" * 2000 + b'"}'
    _error(httpx.post(proxy.url + URL, content=big), 413, "body_too_large")

    def chunks():
        yield big[:500]
        yield big[500:]

    _error(httpx.post(proxy.url + URL, content=chunks()), 413, "body_too_large")
    assert stub.requests == []
    assert [r.status for r in sink.wait(2)] == [413, 413]


def test_502_unreachable(proxy_server):
    proxy, sink = _start(proxy_server, make_config(f"http://127.0.0.1:{free_port()}/v1"))
    response = httpx.post(proxy.url + URL, json={"model": "m", "messages": []})
    _error(response, 502, "upstream_unreachable")
    assert response.headers["x-linguagate-route"] == "main"
    assert sink.wait(1)[0].error == "upstream_unreachable"
    _error(httpx.get(proxy.url + "/v1/models"), 502, "upstream_unreachable")


def test_504_timeout(stub, proxy_server):
    never = threading.Event()
    stub.push(Reply(before=never))
    proxy, sink = _start(proxy_server, make_config(stub.url, timeout_s=0.3))
    response = httpx.post(proxy.url + URL, json={"model": "m", "messages": []})
    _error(response, 504, "upstream_timeout")
    never.set()
    assert sink.wait(1)[0].status == 504


class _Outcome:
    def __init__(self, body, reject=None):
        self.body = body
        self.changed = False
        self.status = "error:engine" if reject else "none"
        self.tokens_before = self.tokens_after = 7
        self.encoding = "o200k_base"
        self.compression_ms = 1.0
        self.reject = reject


class _Runner:
    ready = True

    def __init__(self, fail=None, reject=None):
        self.fail = fail
        self.reject = reject

    async def apply(self, route, upstream, body, raw, headers):
        if self.fail:
            raise self.fail
        return _Outcome(raw, self.reject)

    async def count(self, upstream, body):
        return 7, "o200k_base"


def test_502_fail_closed_reject(stub, proxy_server):
    from proxy.errors import ProxyError

    proxy, sink = _start(proxy_server, make_config(stub.url))
    reject = ProxyError(502, "compression failed", code="compression_failed")
    proxy.app.gateway.runner = _Runner(reject=reject)
    response = httpx.post(proxy.url + URL, json={"model": "m", "messages": []})
    _error(response, 502, "compression_failed")
    assert response.headers["x-linguagate-compression"] == "error:engine"
    assert stub.requests == []
    assert sink.wait(1)[0].compression == "error:engine"


def test_500_unexpected_exception(stub, proxy_server, caplog):
    proxy, sink = _start(proxy_server, make_config(stub.url))
    proxy.app.gateway.runner = _Runner(fail=RuntimeError("boom"))
    _error(httpx.post(proxy.url + URL, json={"model": "m", "messages": []}), 500, "internal_error")
    assert sink.wait(1)[0].status == 500 and sink.wait(1)[0].error == "internal"
    # the server keeps serving
    proxy.app.gateway.runner = _Runner()
    assert httpx.post(proxy.url + URL, json={"model": "m", "messages": []}).status_code == 200


def test_record_fields_for_success(stub, proxy_server):
    proxy, sink = _start(proxy_server, make_config(stub.url))
    proxy.app.gateway.runner = _Runner()
    response = httpx.post(
        proxy.url + URL, json={"model": "gpt-4o", "messages": []}, headers={"x-request-id": "abc"}
    )
    assert response.headers["x-linguagate-tokens-before"] == "7"
    (rec,) = sink.wait(1)
    assert rec.request_id == "abc"
    assert (rec.route, rec.upstream, rec.model, rec.stream, rec.status) == (
        "main",
        "stub",
        "gpt-4o",
        False,
        200,
    )
    assert (rec.prompt_tokens, rec.cached_tokens, rec.completion_tokens) == (11, 2, 3)
    assert rec.total_ms is not None and rec.overhead_ms is not None
    assert rec.upstream_ttfb_ms is not None


def test_record_for_stream_and_disconnect(stub, proxy_server):
    proxy, sink = _start(proxy_server, make_config(stub.url))
    httpx.post(proxy.url + URL, json={"model": "m", "messages": [], "stream": True})
    (rec,) = sink.wait(1)
    assert rec.stream and rec.prompt_tokens == 11 and rec.completion_tokens == 3


def test_413_passthrough(stub, proxy_server):
    proxy, _ = _start(proxy_server, make_config(stub.url, server_extra="  max_body_mb: 0.001"))
    big = b"x" * 5000
    _error(httpx.post(proxy.url + "/v1/embeddings", content=big), 413, "body_too_large")

    def chunks():
        yield big

    _error(httpx.post(proxy.url + "/v1/embeddings", content=chunks()), 413, "body_too_large")
    assert stub.requests == []


class _SlowCountRunner(_Runner):
    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    async def apply(self, route, upstream, body, raw, headers):
        outcome = _Outcome(raw)
        outcome.tokens_before = outcome.tokens_after = None
        return outcome

    async def count(self, upstream, body):
        await asyncio.to_thread(self.release.wait, 20)
        return 42, "o200k_base"


def test_slow_count_never_delays_response(stub, proxy_server):
    proxy, sink = _start(proxy_server, make_config(stub.url))
    release = threading.Event()
    proxy.app.gateway.runner = _SlowCountRunner(release)
    response = httpx.post(proxy.url + URL, json={"model": "m", "messages": []})
    assert response.status_code == 200
    assert response.headers["x-linguagate-tokens-before"] == "unknown"
    release.set()
    (rec,) = sink.wait(1)
    assert (rec.tokens_before, rec.tokens_after, rec.encoding) == (42, 42, "o200k_base")


def test_upstream_body_cut_short_is_recorded_as_upstream_disconnect(stub, proxy_server, caplog):
    proxy, sink = _start(proxy_server, make_config(stub.url))
    full = b'{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1}}'
    headers = [("content-type", "application/json"), ("content-length", str(len(full)))]
    stub.push(Reply(status=200, headers=headers, chunks=[full[:10], full[10:]], disconnect_after=1))
    with pytest.raises(httpx.HTTPError):  # the client sees a truncated response, not a 200
        httpx.post(proxy.url + URL, json={"model": "m", "messages": []}).read()
    (rec,) = sink.wait(1)
    assert rec.error == "upstream_disconnected"
    assert "unexpected error" not in caplog.text


def test_chat_outside_every_prefix_is_a_recorded_404(stub, proxy_server, tmp_path):
    from policies.config import load_config_text
    from tests.ledger_support import rows

    db = tmp_path / "l.sqlite"
    config = load_config_text(
        f"""
server: {{access_log: false}}
upstreams: {{stub: {{base_url: "{stub.url}"}}}}
routes:
  - {{name: rag, prefix: /rag, upstream: stub}}
ledger: {{path: {db}, flush_interval_ms: 10}}
"""
    )
    proxy = proxy_server(config)
    response = httpx.post(proxy.url + URL, json={"model": "gpt-4o", "messages": []})
    _error(response, 404, "no_route")
    ledger = proxy.app.gateway.ledger
    assert ledger.wait_written(1, 20)
    got = rows(db)
    assert [(r["status"], r["error"], r["route"]) for r in got] == [(404, "no_route", "")]
    assert got[0]["request_id"] == response.headers["x-request-id"]
    assert stub.requests == []


def test_passthrough_body_cut_short_is_not_an_internal_error(stub, proxy_server, caplog):
    proxy, _ = _start(proxy_server, make_config(stub.url))
    full = b'{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}'
    headers = [("content-type", "application/json"), ("content-length", str(len(full)))]
    stub.push(Reply(status=200, headers=headers, chunks=[full[:10], full[10:]], disconnect_after=1))
    with pytest.raises(httpx.HTTPError):
        httpx.get(proxy.url + "/v1/models").read()
    assert httpx.get(proxy.url + "/healthz").status_code == 200
    assert "unexpected error" not in caplog.text and "Traceback" not in caplog.text
