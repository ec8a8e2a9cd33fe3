"""Every ``{prefix}/v1/*`` request other than chat completions, forwarded unchanged.

Method, query string, body (streamed, not buffered), status and headers (minus
hop-by-hop ones) pass through; the body is never parsed.
"""

from __future__ import annotations

import asyncio
import logging

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
    send_bytes,
    too_large,
)
from proxy.errors import ProxyError
from proxy.forward import body_stream, response_headers
from proxy.routing import check_path, encoded_rest
from proxy.state import Gateway, check_key

logger = logging.getLogger("linguagate.proxy")
_SMALL_BODY = 1 << 20  # bodies up to this size are read whole (cheaper than chunked upload)


async def handle_passthrough(
    gw: Gateway, scope: Scope, receive: Receive, send: Send, request_id: str
) -> tuple[int, str]:
    """Forward one request; returns (status, route name) for the access log."""
    route_name = ""
    started = False
    watch: DisconnectWatch | None = None
    try:
        raw_headers: Headers = scope["headers"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers}
        path: str = scope["path"]
        check_path(path)
        match = gw.router.match(path, headers)
        if match is None:
            raise ProxyError(404, f"no route for {path}", code="no_route")
        route_name = match.route.name
        drop_auth = check_key(match.route, headers)
        upstream = gw.upstreams[match.route.upstream]
        declared = content_length(raw_headers)
        limit = gw.max_body
        if declared is not None and declared > limit:
            raise too_large(limit)
        chunked = any(n == b"transfer-encoding" for n, _ in raw_headers)
        content: object = None
        out_headers = upstream.request_headers(raw_headers, drop_auth=drop_auth)
        if declared is not None or chunked:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientGone
            first = message.get("body", b"")
            more = message.get("more_body", False)
            if len(first) > limit:
                raise too_large(limit)
            if not more:
                content = first
            elif declared is not None and declared <= _SMALL_BODY:
                parts = [first]
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        raise ClientGone
                    parts.append(message.get("body", b""))
                    more = message.get("more_body", False)
                content = b"".join(parts)
            else:
                content = body_stream(receive, first, more, limit)
                if declared is not None:
                    out_headers.append((b"content-length", str(declared).encode()))
        # While a streamed body is still being read, receive() belongs to the upload.
        watch = DisconnectWatch(receive) if isinstance(content, bytes | None) else None
        rest = encoded_rest(path, scope.get("raw_path"), match.rest)
        url = upstream.url(rest, scope["query_string"], encoded=True)
        response = await upstream.send(scope["method"], url, out_headers, content)
        resp_headers = response_headers(response)
        if not any(name == b"x-request-id" for name, _ in resp_headers):
            resp_headers.append((b"x-request-id", request_id.encode()))
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": resp_headers}
        )
        started = True
        cut = False
        try:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError:
            cut = True  # upstream went away mid-body: end the client's response
        finally:
            await response.aclose()
        if watch is not None:
            watch.finished = True
        await end_body(send, b"", upstream_failed=cut)
        status = response.status_code
    except ProxyError as exc:
        status = exc.status
        if not started:
            await send_bytes(
                send,
                exc.status,
                [*JSON_HEADERS, (b"x-request-id", request_id.encode())],
                exc.body(),
            )
    except ClientGone:
        status = 0
    except asyncio.CancelledError:
        if watch is None or not watch.absorb():
            raise
        status = 0
    except Exception:
        logger.exception(
            "unexpected error forwarding %r (request_id=%r)", scope["path"], request_id
        )
        status = 500
        if not started:
            err = ProxyError(500, "internal proxy error", code="internal_error")
            await send_bytes(
                send, 500, [*JSON_HEADERS, (b"x-request-id", request_id.encode())], err.body()
            )
    finally:
        if watch is not None:
            watch.stop()
    return status, route_name
