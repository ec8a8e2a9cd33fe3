"""Forwarding to upstreams with httpx: one pooled client per upstream, header filtering.

The proxy must be invisible upstream: hop-by-hop and ``x-linguagate-*`` headers are
dropped, nothing is added that fingerprints it (no ``via``, no ``x-forwarded-*``,
the client's own ``user-agent``), and requests are built with ``httpx.Request``
directly so httpx's default headers (``python-httpx`` user agent, ``accept``) are
never merged in. Bodies are sent as bytes (``content=``), never re-serialised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from policies.config import UpstreamConfig
from proxy.errors import ProxyError
from proxy.routing import PATH_SAFE

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Request headers never forwarded as received: hop-by-hop ones, plus those httpx
# recomputes for the upstream (host, content-length).
_DROP_REQUEST = HOP_BY_HOP | {b"host", b"content-length"}
_INTERNAL = b"x-linguagate-"


@dataclass
class Upstream:
    """An upstream's config plus everything precomputed for the hot path."""

    config: UpstreamConfig
    client: httpx.AsyncClient
    base_url: str
    timeout: dict[str, float | None]
    auth: bytes | None  # "Bearer <api_key>"
    extra: Headers = field(default_factory=list)
    extra_names: frozenset[bytes] = frozenset()
    _urls: dict[str, httpx.URL] = field(default_factory=dict)

    @classmethod
    def create(cls, config: UpstreamConfig) -> Upstream:
        limits = httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_connections,
            keepalive_expiry=30.0,
        )
        timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
        client = httpx.AsyncClient(limits=limits, timeout=timeout, follow_redirects=False)
        extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in config.headers.items()
        ]
        return cls(
            config=config,
            client=client,
            base_url=config.base_url,
            timeout=timeout.as_dict(),
            auth=f"Bearer {config.api_key}".encode() if config.api_key else None,
            extra=extra,
            extra_names=frozenset(k for k, _ in extra),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def url(self, rest: str, query: bytes, *, encoded: bool = False) -> httpx.URL:
        """Upstream URL for ``rest`` (``/v1/...``; the base URL already ends in the API root).

        ``rest`` is a decoded path (re-encoded here, so ``?``, ``#`` or ``%`` in it can
        never change the URL's structure) unless ``encoded`` says it is already
        percent-encoded (the client's ``raw_path``, see :func:`proxy.routing.encoded_rest`).
        Parsed URLs are cached per path (httpx's URL parsing is one of the larger
        per-request costs); URLs with a query string are parsed each time. A URL httpx
        refuses is the client's fault: 400 ``invalid_path``.
        """
        key = rest if encoded else "\0" + rest  # decoded and encoded forms never share
        try:
            if not query:
                cached = self._urls.get(key)
                if cached is None:
                    path = rest if encoded else quote(rest, safe=PATH_SAFE)
                    cached = httpx.URL(self.base_url + path[3:])
                    if len(self._urls) < 1024:
                        self._urls[key] = cached
                return cached
            path = rest if encoded else quote(rest, safe=PATH_SAFE)
            qs = query.decode("latin-1")
            if "#" in qs:
                qs = qs.replace("#", "%23")
            return httpx.URL(f"{self.base_url}{path[3:]}?{qs}")
        except httpx.InvalidURL:
            raise ProxyError(400, "invalid request URL", code="invalid_path") from None

    def request_headers(
        self, received: Iterable[tuple[bytes, bytes]], drop_auth: bool = False, stream: bool = False
    ) -> Headers:
        """Headers to send upstream, from the client's (ASGI, lower-case) headers."""
        drop = _DROP_REQUEST
        out: Headers = []
        client_auth = False
        for name, value in received:
            if name in drop or name.startswith(_INTERNAL) or name in self.extra_names:
                continue
            if name == b"authorization":
                if drop_auth:
                    continue
                client_auth = True
                if self.auth is not None and not self.config.prefer_client_key:
                    continue
            if stream and name == b"accept-encoding":
                continue  # SSE is relayed as it arrives: ask for it uncompressed
            out.append((name, value))
        if self.auth is not None and (not client_auth or not self.config.prefer_client_key):
            out.append((b"authorization", self.auth))
        if stream:
            out.append((b"accept-encoding", b"identity"))
        if self.extra:
            out.extend(self.extra)
        return _without_connection_tokens(received, out)

    async def send(
        self, method: str, url: httpx.URL, headers: Headers, content: Any
    ) -> httpx.Response:
        """Send and return the response with its body unread; map failures to 502/504."""
        request = httpx.Request(
            method, url, headers=headers, content=content, extensions={"timeout": self.timeout}
        )
        try:
            return await self.client.send(request, stream=True)
        except httpx.InvalidURL:
            raise ProxyError(400, "invalid request URL", code="invalid_path") from None
        except httpx.TimeoutException as exc:
            raise ProxyError(
                504, f"upstream '{self.config.name}' timed out", code="upstream_timeout"
            ) from exc
        except httpx.TransportError as exc:
            raise ProxyError(
                502,
                f"upstream '{self.config.name}' unreachable ({type(exc).__name__})",
                code="upstream_unreachable",
            ) from exc


def _without_connection_tokens(received: Iterable[tuple[bytes, bytes]], out: Headers) -> Headers:
    """Also drop headers the client listed in ``Connection`` (RFC 9110 7.6.1)."""
    for name, value in received:
        if name == b"connection":
            listed = {t.strip().lower() for t in value.split(b",")} - {b"keep-alive", b"close"}
            if listed:
                return [(k, v) for k, v in out if k not in listed]
    return out


def response_headers(response: httpx.Response, drop_length: bool = False) -> Headers:
    """The upstream's response headers minus hop-by-hop ones, names lower-cased."""
    out: Headers = []
    for name, value in response.headers.raw:
        lname = name.lower()
        if lname in HOP_BY_HOP or (drop_length and lname == b"content-length"):
            continue
        out.append((lname, value))
    return out


async def body_stream(receive: Any, first: bytes, more: bool, limit: int) -> AsyncIterator[bytes]:
    """Stream the rest of an ASGI request body upstream, enforcing the size limit."""
    size = len(first)
    if first:
        yield first
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise ProxyError(400, "client disconnected while sending the body", code="client_gone")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProxyError(413, "request body too large", code="body_too_large")
        more = message.get("more_body", False)
        if chunk:
            yield chunk
