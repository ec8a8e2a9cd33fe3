"""The LinguaGate ASGI app: proxy endpoints plus a few local routes, and the lifespan.

Requests under a route's ``{prefix}/v1`` go straight to the raw-ASGI proxy
handlers (chat completions, or pass-through); everything else (``/healthz``,
``/readyz`` and the routes in :func:`local_routes`, e.g. ``/metrics``) is served by
Starlette. Add local endpoints by appending to the list :func:`local_routes`
returns (or pass ``extra_routes`` to :func:`create_app`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from policies.config import Config
from proxy.accesslog import AccessLog
from proxy.asgi import Receive, Scope, Send
from proxy.chat import handle_chat
from proxy.errors import ProxyError
from proxy.forward import Upstream
from proxy.passthrough import handle_passthrough
from proxy.routing import Router
from proxy.state import Gateway

logger = logging.getLogger("linguagate")
_CHAT = "/v1/chat/completions"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    if gw.runner is not None and gw.runner.ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "starting"}, status_code=503)


def _ledger_of(request: Request) -> Any:
    return request.app.state.gateway.ledger


def local_routes(gateway: Gateway) -> list[BaseRoute]:
    """Endpoints served by the proxy itself (not forwarded). Extend this list."""
    from proxy.savings_page import savings_routes  # /savings, /savings.json, /metrics

    return [Route("/healthz", healthz), Route("/readyz", readyz), *savings_routes(_ledger_of)]


async def _not_found(request: Request, exc: Exception) -> Response:
    err = ProxyError(404, f"no route for {request.url.path}", code="no_route")
    request_id = _request_id(request.scope["headers"])
    return Response(
        err.body(), 404, headers={"x-request-id": request_id}, media_type="application/json"
    )


def _compression_notice(config: Config) -> str | None:
    """Why compression is off, when it is (logged once at startup)."""
    if config.compresses:
        return None
    return "compression is OFF: no route has compress rules; requests are forwarded unchanged"


class LinguaGateApp:
    """Top-level ASGI callable: proxy paths to the handlers, the rest to Starlette."""

    def __init__(self, config: Config, extra_routes: Sequence[BaseRoute] = ()) -> None:
        self.config = config
        self.gateway = Gateway(
            config=config,
            router=Router(config.routes),
            runner=None,
            access_log=AccessLog(config.server.access_log),
        )
        routes = [*local_routes(self.gateway), *extra_routes]
        self.starlette = Starlette(
            routes=routes, lifespan=self._lifespan, exception_handlers={404: _not_found}
        )
        self.starlette.state.gateway = self.gateway
        self.state = self.starlette.state

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        from policies.policy import PolicyRunner

        gw = self.gateway
        config = self.config
        gw.upstreams = {name: Upstream.create(up) for name, up in config.upstreams.items()}
        notice = _compression_notice(config)
        if notice:
            logger.warning(notice)
        runner = PolicyRunner.from_config(config)
        gw.runner = runner
        ledger = None
        try:
            await runner.start()
            # Always created: with ledger.path null it writes no SQLite but still feeds /metrics.
            from proxy.ledger import Ledger

            ledger = Ledger.from_config(config)
            await ledger.start()
            gw.ledger = gw.sink = ledger
            logger.info(
                "LinguaGate ready: %d routes, %d upstreams", len(config.routes), len(gw.upstreams)
            )
            yield
        finally:
            with contextlib.suppress(Exception):
                await runner.close()
            if ledger is not None:
                try:
                    await ledger.close()
                except Exception:
                    logger.exception("ledger close failed")
            for upstream in gw.upstreams.values():
                await upstream.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)  # type: ignore[arg-type]
            return
        path: str = scope["path"]
        rest = self.gateway.router.rest_of(path)
        # Chat completions go to handle_chat even when no prefix matches, so that the
        # 404 no_route is answered and recorded in the ledger like a model-filter miss.
        is_chat = (
            scope["method"] == "POST" and path.endswith(_CHAT) and (rest is None or rest == _CHAT)
        )
        if rest is None and not is_chat:
            await self.starlette(scope, receive, send)  # type: ignore[arg-type]
            return
        t0 = time.perf_counter()
        request_id = _request_id(scope["headers"])
        compression: str | None = None
        if is_chat:
            status, route, compression = await handle_chat(
                self.gateway, scope, receive, send, request_id
            )
        else:
            status, route = await handle_passthrough(self.gateway, scope, receive, send, request_id)
        self.gateway.access_log.log(
            scope["method"],
            log_safe(path),
            route,
            status,
            (time.perf_counter() - t0) * 1000.0,
            compression,
            log_safe(request_id),
        )


def log_safe(text: str) -> str:
    """``text`` with control, non-printable and space characters escaped (``\\x0a``).

    The access log is ``key=value`` lines: a decoded path (``%0A``) or a client's
    ``x-request-id`` must not be able to start a new line or fake a field.
    """
    if text.isprintable() and " " not in text:
        return text
    return "".join(c if c.isprintable() and c != " " else _escape(c) for c in text)


def _escape(c: str) -> str:
    o = ord(c)
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            return value.decode("latin-1")[:128]
    return os.urandom(12).hex()


def create_app(config: Config, extra_routes: Sequence[BaseRoute] = ()) -> Any:
    """Build the ASGI app for ``config`` (resources are created by its lifespan)."""
    return LinguaGateApp(config, extra_routes)
