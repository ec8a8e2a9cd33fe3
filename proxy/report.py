"""Savings report computed from the ledger (JSON shape fixed by the product spec).

Disputed savings numbers are the usual failure of such reports, so the report
states its denominator (whole prompt, target model's tokenizer) and its price
basis, and the totals are the exact sums of its rows.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import time
from datetime import UTC, date, datetime
from typing import Any

from proxy.pricing import BUILTIN_PRICES_AS_OF, PRICE_BASIS

GROUPINGS = ("route", "model", "day", "upstream")
FORMATS = ("table", "json", "csv", "html")
ROW_FIELDS = (
    "key",
    "requests",
    "compressed_requests",
    "tokens_before",
    "tokens_after",
    "tokens_saved",
    "saved_pct",
    "provider_prompt_tokens",
    "cost_saved_usd",
)
TOTAL_FIELDS = ROW_FIELDS[1:]
# Column titles for TOTAL_FIELDS in the text and HTML tables (the first column is the key).
COLUMN_TITLES = (
    "requests",
    "compressed",
    "tokens before",
    "tokens after",
    "tokens saved",
    "saved %",
    "provider prompt tokens",
    "USD saved",
)

_KEY_SQL = {
    "route": "route",
    "model": "COALESCE(model, '(none)')",
    "upstream": "upstream",
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch')",
}
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

TOKENS_BASIS = (
    "tokens_before/tokens_after count the whole prompt (all messages) with the target "
    "model's tokenizer; saved_pct = tokens_saved / tokens_before over the whole prompt"
)


def parse_since(text: str, now: float | None = None) -> float | None:
    """``30m``, ``12h``, ``7d``, ``2w``, ``all`` or an ISO date/time -> unix time (None = all).

    Naive ISO times are UTC. Raises ValueError with a one-line message.
    """
    value = text.strip()
    if value.lower() in ("all", ""):
        return None
    now = time.time() if now is None else now
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mhdw])", value.lower())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"invalid --since {text!r}: use e.g. 30m, 12h, 7d, 2w, all, or an ISO date"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    conn: sqlite3.Connection, since: float | None, by: str = "route"
) -> dict[str, Any]:
    """Aggregate ledger rows since ``since`` (unix time, None = all) grouped by ``by``."""
    if by not in _KEY_SQL:
        raise ValueError(f"invalid --by {by!r}: choose from {', '.join(GROUPINGS)}")
    where, params = ("WHERE ts >= ?", (since,)) if since is not None else ("", ())
    sql = f"""
        SELECT {_KEY_SQL[by]} AS k,
               COUNT(*),
               SUM(compression = 'applied'),
               SUM(COALESCE(tokens_before, 0)),
               SUM(CASE WHEN tokens_before IS NULL THEN 0
                        ELSE COALESCE(tokens_after, tokens_before) END),
               SUM(COALESCE(prompt_tokens, 0)),
               SUM(COALESCE(cost_saved_usd, 0.0))
        FROM requests {where} GROUP BY k
    """
    rows = [_row(*r) for r in conn.execute(sql, params)]
    if by == "day":
        rows.sort(key=lambda r: r["key"])
    else:
        rows.sort(key=lambda r: (-r["tokens_saved"], -r["requests"], r["key"]))
    stats = conn.execute(
        f"""SELECT COALESCE(SUM(tokens_before IS NULL), 0),
                   COALESCE(SUM(tokens_before IS NOT NULL AND price_basis IS NULL), 0),
                   MIN(ts), MAX(ts), COALESCE(SUM(cached_tokens), 0)
            FROM requests {where}""",
        params,
    ).fetchone()
    uncounted, unpriced, first, last, cached = stats
    bases = [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT price_basis FROM requests {where} ORDER BY 1", params
        )
        if r[0]
    ]
    notes = [
        f"built-in prices are OpenAI list prices as of {BUILTIN_PRICES_AS_OF}; "
        "config `prices` entries take precedence",
        "provider_prompt_tokens is the provider's own usage count (after compression)",
        f"provider-reported cached prompt tokens in this period: {cached}",
    ]
    if uncounted:
        notes.append(
            f"{uncounted} request(s) have no token counts (failed before counting); "
            "they count in requests only"
        )
    if unpriced:
        notes.append(f"{unpriced} request(s) used a model with no known price: cost_saved_usd 0")
    return {
        "since": iso(since) if since is not None else "all",
        "by": by,
        "rows": rows,
        "totals": _totals(rows),
        "basis": {"tokens": TOKENS_BASIS, "cost": PRICE_BASIS, "prices": bases},
        "notes": notes,
        "generated_at": iso(time.time()),
        "first_request": iso(first) if first is not None else None,
        "last_request": iso(last) if last is not None else None,
    }


def _pct(saved: int, before: int) -> float:
    return round(100.0 * saved / before, 1) if before else 0.0


def _row(
    key: Any, n: int, compressed: int, before: int, after: int, provider: int, cost: float
) -> dict[str, Any]:
    saved = before - after
    return {
        "key": str(key),
        "requests": n,
        "compressed_requests": compressed or 0,
        "tokens_before": before,
        "tokens_after": after,
        "tokens_saved": saved,
        "saved_pct": _pct(saved, before),
        "provider_prompt_tokens": provider,
        "cost_saved_usd": round(cost, 6),
    }


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tot = {f: sum(r[f] for r in rows) for f in TOTAL_FIELDS if f not in ("saved_pct",)}
    tot["saved_pct"] = _pct(tot["tokens_saved"], tot["tokens_before"])
    tot["cost_saved_usd"] = round(tot["cost_saved_usd"], 6)
    return {f: tot[f] for f in TOTAL_FIELDS}


def to_csv(report: dict[str, Any]) -> str:
    """Rows only (no totals line, so column sums stay correct in a spreadsheet)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(ROW_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(report["rows"])
    return out.getvalue()


def _fmt(field: str, value: Any) -> str:
    if field == "cost_saved_usd":
        return f"{value:.4f}"
    if field == "saved_pct":
        return f"{value:.1f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def to_table(report: dict[str, Any]) -> str:
    """Aligned plain text with a totals line and the basis underneath."""
    headers = [report["by"], *COLUMN_TITLES]
    body = [[_fmt(f, r[f]) for f in ROW_FIELDS] for r in report["rows"]]
    total = ["TOTAL", *(_fmt(f, report["totals"][f]) for f in TOTAL_FIELDS)]
    widths = [max(len(str(c[i])) for c in [headers, *body, total]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    period = "all time" if report["since"] == "all" else f"since {report['since']}"
    out = [
        f"LinguaGate savings, {period}, by {report['by']}",
        "",
        line(headers),
        rule,
        *(line(r) for r in body),
        rule,
        line(total),
        "",
    ]
    out.append(f"Tokens: {report['basis']['tokens']}.")
    out.append(f"Cost: {report['basis']['cost']}.")
    out.extend(f"Note: {n}." for n in report["notes"])
    return "\n".join(out) + "\n"
