"""The HTML report: parses, self-contained, charts and denominators present."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from proxy.ledger import Ledger
from proxy.ledger_db import open_reader
from proxy.report_html import html_report
from tests.ledger_support import make_config, make_record

DAY = 86_400.0


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    parser.close()
    return parser


async def _ledger(path: Path, records: list) -> Path:
    ledger = Ledger.from_config(make_config(path))
    await ledger.start()
    for rec in records:
        ledger.record(rec)
    await ledger.close()
    return path


def _page(db: Path, by: str = "route") -> str:
    conn = open_reader(db)
    try:
        return html_report(conn, None, by)
    finally:
        conn.close()


@pytest.mark.parametrize("by", ["route", "day"])
async def test_html_report_is_self_contained_with_charts(tmp_path: Path, by: str) -> None:
    t0 = 1_700_000_000.0
    recs = [
        make_record(
            started_at=t0 + (i % 5) * DAY,
            route=("rag", "chat", "<b>x</b>")[i % 3],
            tokens_before=1000 + i,
            tokens_after=400 + i,
        )
        for i in range(30)
    ]
    page = _page(await _ledger(tmp_path / "l.sqlite", recs), by)
    doc = _parse(page)
    tags = [t for t, _ in doc.tags]
    assert tags.count("svg") == 2
    ids = {a.get("id") for t, a in doc.tags if t == "svg"}
    assert ids == {"chart-daily", "chart-routes"}
    daily_bars = page.split('id="chart-daily"')[1].split("</svg>")[0].count("<rect")
    assert daily_bars == 2 * 5 + 2  # before/after per day + legend swatches
    # self-contained: no scripts, no external stylesheets, fonts or images
    assert "script" not in tags and "link" not in tags and "img" not in tags
    for _, attrs in doc.tags:
        for name in ("src", "href"):
            assert not attrs.get(name), attrs
    assert "@import" not in page and "url(" not in page
    text = " ".join(doc.text)
    assert "whole prompt" in text and "target model's tokenizer" in text
    assert "list input price" in text
    assert "<b>x</b>" in text and "<b>x</b>" not in page  # escaped, not markup
    assert "total" in text and "30" in text


async def test_html_report_empty_ledger(tmp_path: Path) -> None:
    page = _page(await _ledger(tmp_path / "l.sqlite", []))
    doc = _parse(page)
    assert [t for t, _ in doc.tags].count("svg") == 2
    assert "no requests in this period" in " ".join(doc.text)
