"""``POST {prefix}/v1/chat/completions``: parse once, compress per policy, forward, relay.

The request JSON is parsed exactly once; the bytes sent upstream are the client's
own unless the policy compressed something or stream usage was injected. When the
policy did not count tokens, the count runs in a worker thread concurrently with the
upstream request and never delays the response: if it has not finished when the
upstream answers, ``x-linguagate-tokens-*`` say ``unknown`` and only the record gets
the number. Exactly one RequestRecord goes to the sink per request, whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from typing import Any

import httpx

from proxy.asgi import (
    JSON_HEADERS,
    ClientGone,
    DisconnectWatch,
    Headers,
    Receive,
    Scope,
    Send,
    content_length,
    end_body,
    read_body,
    send_bytes,
)
from proxy.errors import ProxyError, bad_request
from proxy.forward import response_headers
from proxy.records import RequestRecord
from proxy.state import Gateway, check_key
from proxy.streaming import SSEScanner, client_wants_usage, inject_usage, usage_from_json
from proxy.streaming import usage_numbers as _usage_numbers

logger = logging.getLogger("linguagate.proxy")
_USAGE_CAP = 8 << 20  # non-streaming bodies above this are relayed without reading usage


def _validate(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", "invalid_body")
    if not isinstance(body.get("messages"), list):
        raise bad_request("'messages' must be a list", "invalid_messages")
    for key, kind, name in (
        ("model", str, "a string"),
        ("stream", bool, "a boolean"),
        ("stream_options", dict, "an object"),
    ):
        value = body.get(key)
        if value is not None and not isinstance(value, kind):
            raise bad_request(f"'{key}' must be {name}", "invalid_field")
    return body


def _linguagate_headers(rec: RequestRecord) -> Headers:
    def num(value: int | None) -> bytes:
        return b"unknown" if value is None else str(value).encode()

    return [
        (b"x-linguagate-route", rec.route.encode()),
        (b"x-linguagate-tokens-before", num(rec.tokens_before)),
        (b"x-linguagate-tokens-after", num(rec.tokens_after)),
        (b"x-linguagate-compression", rec.compression.encode()),
        (b"x-linguagate-overhead-ms", f"{rec.overhead_ms or 0.0:.2f}".encode()),
    ]


async def handle_chat(
    gw: Gateway, scope: Scope, receive: Receive, send: Send, request_id: str
) -> tuple[int, str, str | None]:
    """Serve one chat completion; returns (status, route, compression) for the access log."""
    t0 = time.perf_counter()
    rec = RequestRecord(request_id=request_id, started_at=time.time(), route="", upstream="")
    watch: DisconnectWatch | None = None
    counting: asyncio.Future[tuple[int | None, str | None]] | None = None
    started = False  # response headers sent
    try:
        raw_headers: Headers = scope["headers"]
        raw = await read_body(receive, gw.max_body, content_length(raw_headers))
        watch = DisconnectWatch(receive)
        try:
            body = _validate(json.loads(raw))
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise bad_request("request body is not valid JSON", "invalid_json") from None
        model = body.get("model")
        rec.model = model
        stream = body.get("stream") is True
        rec.stream = stream
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers}
        match = gw.router.match(scope["path"], headers, model, check_model=True)
        if match is None:
            raise ProxyError(
                404, f"no route for {scope['path']} (model {model!r})", code="no_route"
            )
        route = match.route
        rec.route, rec.upstream = route.name, route.upstream
        drop_auth = check_key(route, headers)
        upstream = gw.upstreams[route.upstream]

        outcome = await gw.runner.apply(route, upstream.config, body, raw, headers)
        rec.compression = outcome.status
        rec.compression_ms = outcome.compression_ms
        rec.tokens_before, rec.tokens_after = outcome.tokens_before, outcome.tokens_after
        rec.encoding = outcome.encoding
        if outcome.reject is not None:
            reject = outcome.reject
            if not isinstance(reject, ProxyError):
                reject = ProxyError(
                    502, str(reject) or "compression failed", code="compression_failed"
                )
            raise reject
        payload: bytes = outcome.body
        if gw.config.ledger.store_prompts:
            _keep_prompts(rec, body, outcome.body if outcome.changed else None)
        strip_usage = stream and upstream.config.stream_usage and not client_wants_usage(body)
        if strip_usage:
            payload = inject_usage(payload, body)
        if outcome.tokens_before is None:
            counting = asyncio.ensure_future(gw.runner.count(upstream.config, body))

        url = upstream.url(match.rest, scope["query_string"])
        out_headers = upstream.request_headers(raw_headers, drop_auth=drop_auth, stream=stream)
        t_send = time.perf_counter()
        rec.overhead_ms = round((t_send - t0) * 1000.0, 3)
        response = await upstream.send("POST", url, out_headers, payload)
        rec.upstream_ttfb_ms = round((time.perf_counter() - t_send) * 1000.0, 3)
        if counting is not None and counting.done():
            await _take_count(counting, rec)
            counting = None
        # else the headers say "unknown" and the record gets the count when it is done

        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        scanner = SSEScanner(strip_usage=strip_usage) if stream and is_sse else None
        resp_headers = response_headers(response, drop_length=scanner is not None)
        resp_headers += _linguagate_headers(rec)
        if not any(name == b"x-request-id" for name, _ in resp_headers):
            resp_headers.append((b"x-request-id", request_id.encode()))
        if scanner is not None:
            resp_headers = [(k, v) for k, v in resp_headers if k not in _SSE_OVERRIDES]
            resp_headers += _SSE_HEADERS
        rec.status = response.status_code
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": resp_headers}
        )
        started = True
        await _relay(response, send, scanner, rec, watch)
    except ProxyError as exc:
        rec.error = rec.error or exc.kind
        if not started:
            rec.status = exc.status
            headers_out = [
                *JSON_HEADERS,
                *_linguagate_headers(rec),
                (b"x-request-id", request_id.encode()),
            ]
            await send_bytes(send, exc.status, headers_out, exc.body())
    except ClientGone:
        rec.status, rec.error = 0, "client_disconnected"
    except asyncio.CancelledError:
        if watch is None or not watch.absorb():
            if counting is not None:
                counting.cancel()
            _finish(gw, rec, t0, watch)
            raise
        rec.status, rec.error = 0, "client_disconnected"
    except Exception:
        logger.exception("unexpected error in chat handler (request_id=%s)", request_id)
        rec.error = "internal"
        if not started:
            rec.status = 500
            err = ProxyError(500, "internal proxy error", code="internal_error")
            await send_bytes(
                send, 500, [*JSON_HEADERS, (b"x-request-id", request_id.encode())], err.body()
            )
    if counting is not None:
        if rec.upstream_ttfb_ms is None:
            counting.cancel()  # the request never reached the upstream
        await _take_count(counting, rec)
    _finish(gw, rec, t0, watch)
    return rec.status, rec.route, rec.compression


def _keep_prompts(rec: RequestRecord, body: dict[str, Any], sent: bytes | None) -> None:
    """Copy the messages (before/after compression) into the record; only when configured."""
    before = json.dumps(body.get("messages"), ensure_ascii=False)
    rec.prompt_before = before
    rec.prompt_after = before
    if sent is not None:
        try:
            rec.prompt_after = json.dumps(json.loads(sent).get("messages"), ensure_ascii=False)
        except (ValueError, AttributeError):
            rec.prompt_after = None


async def _take_count(
    counting: asyncio.Future[tuple[int | None, str | None]], rec: RequestRecord
) -> None:
    """Put the concurrent whole-prompt count into the record (best effort)."""
    if counting.cancelled():
        return
    try:
        tokens, encoding = await counting
    except asyncio.CancelledError:
        if counting.cancelled():
            return
        raise
    except Exception:  # counting must never fail the request
        logger.exception("token counting failed")
        return
    rec.tokens_before = rec.tokens_after = tokens
    rec.encoding = encoding


_SSE_HEADERS: Headers = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
_SSE_OVERRIDES = frozenset(name for name, _ in _SSE_HEADERS)


def _finish(gw: Gateway, rec: RequestRecord, t0: float, watch: DisconnectWatch | None) -> None:
    if watch is not None:
        watch.stop()
    rec.total_ms = round((time.perf_counter() - t0) * 1000.0, 3)
    try:
        gw.sink.record(rec)
    except Exception:
        logger.exception("request sink failed")


def _decoded(data: bytes, encoding: str | None) -> bytes:
    """The relayed raw bytes, decompressed for reading usage (gzip/deflate only)."""
    if not encoding or encoding == "identity":
        return data
    try:
        return zlib.decompress(data, 47) if encoding in ("gzip", "deflate") else b""
    except zlib.error:
        return b""


async def _relay(
    response: httpx.Response,
    send: Send,
    scanner: SSEScanner | None,
    rec: RequestRecord,
    watch: DisconnectWatch,
) -> None:
    """Relay the upstream body as it arrives; an upstream failure ends the stream cleanly."""
    kept: list[bytes] | None = [] if scanner is None else None
    kept_size = 0
    try:
        async for chunk in response.aiter_raw():
            if scanner is not None:
                chunk = scanner.feed(chunk)
            elif kept is not None:
                kept_size += len(chunk)
                if kept_size <= _USAGE_CAP:
                    kept.append(chunk)
                else:
                    kept = None
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except httpx.TimeoutException:
        rec.error = "upstream_timeout"
    except httpx.HTTPError:
        rec.error = "upstream_disconnected"
    finally:
        await response.aclose()
    tail = scanner.finish() if scanner is not None else b""
    watch.finished = True
    await end_body(send, tail, upstream_failed=rec.error is not None)
    usage = None
    if scanner is not None:
        usage = scanner.usage
    elif kept:
        usage = usage_from_json(_decoded(b"".join(kept), response.headers.get("content-encoding")))
    if usage is not None:
        rec.prompt_tokens, rec.cached_tokens, rec.completion_tokens = _usage_numbers(usage)
