"""Self-contained HTML savings report with inline SVG charts.

One file, no scripts, fonts or stylesheets fetched from anywhere: it must open
from an e-mail attachment or an air-gapped box, and ``GET /savings`` serves the
same page.
"""

from __future__ import annotations

import sqlite3
from html import escape
from typing import Any

from proxy.report import COLUMN_TITLES, ROW_FIELDS, TOTAL_FIELDS, build_report

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:24px auto;max-width:1180px;padding:0 16px;color:#1f2933;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.sub{color:#52606d;margin:0 0 16px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px}
.tile{border:1px solid #d9e2ec;border-radius:8px;padding:12px 14px;background:#f8fafc}
.tile .v{font-size:24px;font-weight:600;margin-top:4px}.tile .l{color:#52606d;font-size:13px}
.tile .d{color:#52606d;font-size:12px;margin-top:4px}
.basis{background:#fffbea;border:1px solid #f7d070;border-radius:8px;padding:10px 14px;
font-size:14px;margin-top:16px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 8px;border-bottom:1px solid #e4e7eb;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f4f8}
tr.total td{font-weight:600;border-top:2px solid #9aa5b1}
svg{display:block;width:100%;height:auto;border:1px solid #e4e7eb;border-radius:8px}
svg text{font-family:inherit}
ul.notes{color:#52606d;font-size:13px}
"""

_BEFORE, _AFTER, _SAVED = "#9aa5b1", "#2680c2", "#3ebd93"


def _n(v: int | float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


def _short(v: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.0f}"


def _ticks(top: float) -> list[float]:
    """About five round gridline values from 0 to >= top."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 5
    mag = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks, v = [], 0.0
    while v < top:
        ticks.append(v)
        v += step
    return [*ticks, v]


def daily_chart(days: list[dict[str, Any]], width: int = 1100, height: int = 320) -> str:
    """Grouped bars: tokens before (grey) and after (blue) per day."""
    left, right, top, bottom = 70, 20, 40, 60
    pw, ph = width - left - right, height - top - bottom
    parts = [
        f'<svg id="chart-daily" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Prompt tokens before and after compression per day">',
        "<title>Prompt tokens before and after compression per day</title>",
    ]
    _legend(parts, left, 22, [("tokens before", _BEFORE), ("tokens after", _AFTER)])
    if not days:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
            'fill="#52606d">no requests in this period</text></svg>'
        )
        return "".join(parts)
    ticks = _ticks(max(max(d["tokens_before"], d["tokens_after"]) for d in days))
    ymax = ticks[-1] or 1
    for t in ticks:
        y = top + ph - ph * t / ymax
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e4e7eb"/><text x="{left - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end" font-size="11" fill="#52606d">{_short(t)}</text>'
        )
    slot = pw / len(days)
    bar = max(1.0, min(28.0, slot * 0.38))
    label_every = max(1, round(len(days) / 14))
    for i, d in enumerate(days):
        x0 = left + slot * i + slot / 2
        for value, color, dx, name in (
            (d["tokens_before"], _BEFORE, -bar, "before"),
            (d["tokens_after"], _AFTER, 0.0, "after"),
        ):
            h = ph * value / ymax
            parts.append(
                f'<rect x="{x0 + dx:.1f}" y="{top + ph - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{escape(d["key"])} {name}: '
                f"{_n(value)} tokens</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x0:.1f}" y="{top + ph + 18}" text-anchor="middle" '
                f'font-size="11" fill="#52606d">{escape(d["key"][5:])}</text>'
            )
    parts.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#9aa5b1"/>'
    )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 16}" text-anchor="middle" '
        'font-size="12" fill="#52606d">day (UTC, MM-DD)</text></svg>'
    )
    return "".join(parts)


def route_chart(routes: list[dict[str, Any]], width: int = 1100) -> str:
    """Horizontal bars: tokens saved per route, with saved % of the whole prompt."""
    left, right, top, row_h = 180, 190, 40, 30
    height = top + max(1, len(routes)) * row_h + 20
    pw = width - left - right
    parts = [
        f'<svg id="chart-routes" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Tokens saved by route">',
        "<title>Tokens saved by route</title>",
    ]
    _legend(parts, left, 22, [("tokens saved (saved % of whole prompt)", _SAVED)])
    if not routes:
        parts.append(
            f'<text x="{width / 2}" y="{top + 20}" text-anchor="middle" '
            'fill="#52606d">no requests in this period</text></svg>'
        )
        return "".join(parts)
    vmax = max(max(r["tokens_saved"] for r in routes), 1)
    for i, r in enumerate(routes):
        y = top + i * row_h
        w = pw * max(r["tokens_saved"], 0) / vmax
        parts.append(
            f'<text x="{left - 8}" y="{y + 19}" text-anchor="end" font-size="13">'
            f"{escape(_clip(r['key']))}</text>"
            f'<rect x="{left}" y="{y + 5}" width="{w:.1f}" height="{row_h - 10}" '
            f'fill="{_SAVED}"><title>{escape(r["key"])}: {_n(r["tokens_saved"])} '
            f"tokens saved</title></rect>"
            f'<text x="{left + w + 8:.1f}" y="{y + 19}" font-size="12" fill="#323f4b">'
            f"{_short(r['tokens_saved'])} ({r['saved_pct']:.1f}%, "
            f"${r['cost_saved_usd']:.4f})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _period(report: dict[str, Any]) -> str:
    return "All time" if report["since"] == "all" else f"Since {report['since']}"


def _clip(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _legend(parts: list[str], x: float, y: float, items: list[tuple[str, str]]) -> None:
    for label, color in items:
        parts.append(
            f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{color}"/>'
            f'<text x="{x + 18}" y="{y}" font-size="12">{escape(label)}</text>'
        )
        x += 30 + 7 * len(label)


def _tile(label: str, value: str, detail: str = "") -> str:
    d = f'<div class="d">{escape(detail)}</div>' if detail else ""
    return (
        f'<div class="tile"><div class="l">{escape(label)}</div>'
        f'<div class="v">{escape(value)}</div>{d}</div>'
    )


def _table(report: dict[str, Any]) -> str:
    heads = [report["by"], *COLUMN_TITLES]
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in heads), "</tr></thead><tbody>"]
    for r in report["rows"]:
        out.append(
            "<tr>" + "".join(f"<td>{escape(_cell(f, r[f]))}</td>" for f in ROW_FIELDS) + "</tr>"
        )
    t = report["totals"]
    out.append(
        '<tr class="total"><td>total</td>'
        + "".join(f"<td>{escape(_cell(f, t[f]))}</td>" for f in TOTAL_FIELDS)
        + "</tr></tbody></table>"
    )
    return "".join(out)


def _cell(field: str, v: Any) -> str:
    if field == "cost_saved_usd":
        return f"${v:.4f}"
    if field == "saved_pct":
        return f"{v:.1f}%"
    return _n(v) if isinstance(v, int | float) else str(v)


def render_html(report: dict[str, Any], daily: dict[str, Any], by_route: dict[str, Any]) -> str:
    """The whole page from three reports over the same period (table, day, route)."""
    t = report["totals"]
    tiles = "".join(
        [
            _tile("requests", _n(t["requests"]), f"{_n(t['compressed_requests'])} compressed"),
            _tile("prompt tokens before", _n(t["tokens_before"]), "whole prompt, target tokenizer"),
            _tile("prompt tokens after", _n(t["tokens_after"]), "as sent upstream"),
            _tile("tokens saved", _n(t["tokens_saved"]), f"{t['saved_pct']:.1f}% of whole prompt"),
            _tile("USD saved", f"${t['cost_saved_usd']:.4f}", "list input price"),
            _tile("provider prompt tokens", _n(t["provider_prompt_tokens"]), "provider usage"),
        ]
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in report["notes"])
    prices = ", ".join(report["basis"]["prices"]) or "none"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LinguaGate savings</title><style>{_CSS}</style></head>
<body>
<h1>LinguaGate savings</h1>
<p class="sub">{escape(_period(report))} &middot; generated {escape(report["generated_at"])}
&middot; {_n(t["requests"])} requests</p>
<div class="tiles">{tiles}</div>
<div class="basis"><b>Denominator:</b> {escape(report["basis"]["tokens"])}.<br>
<b>Cost basis:</b> {escape(report["basis"]["cost"])}.<br>
<b>Prices used:</b> {escape(prices)}.</div>
<h2>Prompt tokens per day</h2>
{daily_chart(daily["rows"])}
<h2>Savings by route</h2>
{route_chart(by_route["rows"])}
<h2>By {escape(report["by"])}</h2>
{_table(report)}
<ul class="notes">{notes}</ul>
</body></html>
"""


def html_report(conn: sqlite3.Connection, since: float | None, by: str = "route") -> str:
    """Build the three reports from one read snapshot and render them."""
    conn.execute("BEGIN")  # one snapshot: a writer can't make the charts disagree
    try:
        report = build_report(conn, since, by)
        daily = report if by == "day" else build_report(conn, since, "day")
        routes = report if by == "route" else build_report(conn, since, "route")
    finally:
        conn.execute("ROLLBACK")
    return render_html(report, daily, routes)
