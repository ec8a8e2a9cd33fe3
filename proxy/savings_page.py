"""``GET /savings`` (HTML), ``GET /savings.json`` and ``GET /metrics`` handlers.

SQLite reads run in a worker thread (``asyncio.to_thread``) so a large ledger
never stalls the event loop that relays streams. The app passes a callable
returning its ``Ledger`` (which also owns the metrics registry).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from proxy.ledger import Ledger
from proxy.ledger_db import LedgerError, open_reader
from proxy.metrics import CONTENT_TYPE
from proxy.report import GROUPINGS, build_report, parse_since
from proxy.report_html import html_report

GetLedger = Callable[[Request], Ledger | None]


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": kind}},
        status_code=status,
    )


def _params(request: Request) -> tuple[float | None, str] | JSONResponse:
    since_text = request.query_params.get("since", "7d")
    by = request.query_params.get("by", "route")
    if by not in GROUPINGS:
        return _error(400, f"invalid by {by!r}: choose from {', '.join(GROUPINGS)}", "bad_by")
    try:
        return parse_since(since_text), by
    except ValueError as exc:
        return _error(400, str(exc).replace("--since", "since"), "bad_since")


def _read(ledger: Ledger, fn: Callable[[Any], Any]) -> Any:
    """Run ``fn(conn)`` on a fresh read-only connection (worker thread)."""
    assert ledger.path is not None
    conn = open_reader(ledger.path)
    try:
        return fn(conn)
    finally:
        conn.close()


async def _report(request: Request, get_ledger: GetLedger, html: bool) -> Response:
    ledger = get_ledger(request)
    if ledger is None or ledger.path is None:
        return _error(404, "the savings ledger is disabled (ledger.path is null)", "no_ledger")
    params = _params(request)
    if isinstance(params, JSONResponse):
        return params
    since, by = params
    try:
        if html:
            page = await asyncio.to_thread(_read, ledger, lambda c: html_report(c, since, by))
            return HTMLResponse(page, headers={"cache-control": "no-store"})
        data = await asyncio.to_thread(_read, ledger, lambda c: build_report(c, since, by))
    except LedgerError as exc:
        return _error(503, str(exc), "ledger_unavailable")
    return Response(
        json.dumps(data, indent=2),
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


async def _metrics(request: Request, get_ledger: GetLedger) -> Response:
    ledger = get_ledger(request)
    if ledger is None:
        return Response(b"", media_type=CONTENT_TYPE)
    return Response(ledger.metrics.render(), media_type=CONTENT_TYPE)


def savings_routes(get_ledger: GetLedger) -> list[Route]:
    """Routes for the app's route list: /savings, /savings.json, /metrics."""

    async def savings(request: Request) -> Response:
        return await _report(request, get_ledger, html=True)

    async def savings_json(request: Request) -> Response:
        return await _report(request, get_ledger, html=False)

    async def metrics(request: Request) -> Response:
        return await _metrics(request, get_ledger)

    return [
        Route("/savings", savings, methods=["GET"]),
        Route("/savings.json", savings_json, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
