"""Report aggregation (JSON shape from the product spec), --since parsing and the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.ledger import Ledger
from proxy.ledger_db import open_reader
from proxy.report import build_report, parse_since, to_table
from tests.ledger_support import make_config, make_record

DAY = 86_400.0
NOW = 1_700_000_000.0 + 10 * DAY

ROW_KEYS = {
    "key",
    "requests",
    "compressed_requests",
    "tokens_before",
    "tokens_after",
    "tokens_saved",
    "saved_pct",
    "provider_prompt_tokens",
    "cost_saved_usd",
}


def _records() -> list:
    t0 = NOW - 3 * DAY
    return [
        make_record(
            started_at=t0,
            route="rag",
            model="gpt-4o",
            tokens_before=1000,
            tokens_after=400,
            prompt_tokens=410,
        ),
        make_record(
            started_at=t0 + 60,
            route="rag",
            model="gpt-4o-mini",
            tokens_before=2000,
            tokens_after=1000,
            prompt_tokens=1005,
            cached_tokens=512,
        ),
        make_record(
            started_at=t0 + DAY,
            route="rag",
            model="gpt-4o",
            compression="bypassed",
            tokens_before=500,
            tokens_after=500,
            prompt_tokens=505,
        ),
        make_record(
            started_at=t0 + DAY,
            route="chat",
            model="gpt-4o",
            compression="none",
            tokens_before=300,
            tokens_after=None,
            prompt_tokens=None,
            stream=True,
        ),
        make_record(
            started_at=t0 + 2 * DAY,
            route="chat",
            model="gpt-4o",
            status=502,
            compression="skipped:queue_full",
            tokens_before=None,
            tokens_after=None,
            prompt_tokens=None,
            upstream="other",
        ),
        make_record(
            started_at=t0 + 2 * DAY,
            route="chat",
            model="mystery-1",
            tokens_before=800,
            tokens_after=200,
            prompt_tokens=210,
        ),
        make_record(started_at=NOW - 30 * DAY, route="old", tokens_before=10, tokens_after=5),
    ]


@pytest.fixture
async def ledger_file(tmp_path: Path) -> Path:
    db = tmp_path / "ledger.sqlite"
    ledger = Ledger.from_config(make_config(db))
    await ledger.start()
    for rec in _records():
        ledger.record(rec)
    await ledger.close()
    return db


def _report(db: Path, since: float | None, by: str) -> dict:
    conn = open_reader(db)
    try:
        return build_report(conn, since, by)
    finally:
        conn.close()


def test_report_by_route_matches_records(ledger_file: Path) -> None:
    report = _report(ledger_file, NOW - 7 * DAY, "route")
    assert set(report) >= {"since", "by", "rows", "totals", "basis", "notes"}
    assert report["by"] == "route" and report["since"] == "2023-11-17T22:13:20Z"
    by_key = {r["key"]: r for r in report["rows"]}
    assert set(by_key) == {"rag", "chat"}  # "old" is before --since
    assert all(set(r) == ROW_KEYS for r in report["rows"])
    rag = by_key["rag"]
    assert (rag["requests"], rag["compressed_requests"]) == (3, 2)
    assert (rag["tokens_before"], rag["tokens_after"], rag["tokens_saved"]) == (3500, 1900, 1600)
    assert rag["saved_pct"] == round(100 * 1600 / 3500, 1)
    assert rag["provider_prompt_tokens"] == 410 + 1005 + 505
    assert rag["cost_saved_usd"] == pytest.approx(600 * 2.5e-6 + 1000 * 0.15e-6)
    chat = by_key["chat"]
    # tokens_after missing -> nothing was removed; no counts at all -> requests only
    assert (chat["requests"], chat["tokens_before"], chat["tokens_after"]) == (3, 1100, 500)
    assert chat["cost_saved_usd"] == 0  # mystery-1 has no price
    totals = report["totals"]
    for field in (
        "requests",
        "compressed_requests",
        "tokens_before",
        "tokens_after",
        "tokens_saved",
        "provider_prompt_tokens",
    ):
        assert totals[field] == sum(r[field] for r in report["rows"])
    assert totals["cost_saved_usd"] == pytest.approx(rag["cost_saved_usd"])
    assert totals["saved_pct"] == round(100 * 2200 / 4600, 1)
    assert "whole prompt" in report["basis"]["tokens"]
    assert "target model's tokenizer" in report["basis"]["tokens"]
    assert "list input price" in report["basis"]["cost"]
    assert "excludes cached-input discounts" in report["basis"]["cost"]
    notes = " ".join(report["notes"])
    assert "1 request(s) have no token counts" in notes
    assert "1 request(s) used a model with no known price" in notes
    assert "cached prompt tokens in this period: 512" in notes


def test_report_groupings(ledger_file: Path) -> None:
    days = _report(ledger_file, None, "day")
    assert [r["key"] for r in days["rows"]] == [
        "2023-10-25",
        "2023-11-21",
        "2023-11-22",
        "2023-11-23",
    ]
    assert days["since"] == "all" and days["totals"]["requests"] == 7
    models = {r["key"] for r in _report(ledger_file, None, "model")["rows"]}
    assert models == {"gpt-4o", "gpt-4o-mini", "mystery-1"}
    ups = {r["key"]: r["requests"] for r in _report(ledger_file, None, "upstream")["rows"]}
    assert ups == {"openai": 6, "other": 1}
    with pytest.raises(ValueError):
        _report(ledger_file, None, "tenant")


def test_empty_period(ledger_file: Path) -> None:
    report = _report(ledger_file, NOW + DAY, "route")
    assert report["rows"] == []
    assert report["totals"]["requests"] == 0 and report["totals"]["saved_pct"] == 0.0
    assert "TOTAL" in to_table(report)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - 1800),
        ("12h", NOW - 12 * 3600),
        ("7d", NOW - 7 * DAY),
        ("2w", NOW - 14 * DAY),
        ("all", None),
        ("2024-01-02", 1704153600.0),
        ("2024-01-02T03:00:00Z", 1704164400.0),
        ("2024-01-02T03:00:00+01:00", 1704160800.0),
    ],
)
def test_parse_since(text: str, expected: float | None) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["7 days", "yesterday", "-3d", "2024-13-01", "7y"])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid --since"):
        parse_since(text, now=NOW)


def test_cli_formats(ledger_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", "--ledger", str(ledger_file), "--since", "all", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["requests"] == 7 and data["by"] == "route"

    assert (
        main(
            [
                "report",
                "--ledger",
                str(ledger_file),
                "--since",
                "all",
                "--format",
                "csv",
                "--by",
                "model",
            ]
        )
        == 0
    )
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert set(table[0]) == ROW_KEYS
    assert sum(int(r["requests"]) for r in table) == 7

    assert main(["report", "--ledger", str(ledger_file), "--since", "all"]) == 0
    text = capsys.readouterr().out
    assert "TOTAL" in text and "whole prompt" in text and "rag" in text

    out = tmp_path / "r.html"
    assert (
        main(
            [
                "report",
                "--ledger",
                str(ledger_file),
                "--format",
                "html",
                "--since",
                "all",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_cli_reads_ledger_path_from_config(
    ledger_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "upstreams:\n  openai: {base_url: 'http://127.0.0.1:9/v1'}\n"
        "routes:\n  - {name: all, prefix: /, upstream: openai}\n"
        f"ledger:\n  path: {ledger_file}\n"
    )
    assert main(["report", "--config", str(cfg), "--since", "all", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["requests"] == 7


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--ledger", "{missing}"], 1, "ledger file not found"),
        (["--ledger", "{db}", "--since", "yesterday"], 2, "--since"),
        (["--ledger", "{db}", "--by", "tenant"], 2, "--by"),
        (["--ledger", "{db}", "--format", "pdf"], 2, "--format"),
        (["--ledger", "{db}", "--config", "x.yaml"], 2, "not allowed with"),
        (["--config", "{missing}"], 2, "invalid config"),
    ],
)
def test_cli_errors_are_one_line(
    ledger_file: Path,
    tmp_path: Path,
    args: list[str],
    code: int,
    needle: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [a.format(missing=tmp_path / "missing.sqlite", db=ledger_file) for a in args]
    try:
        rc = main(["report", *argv])
    except SystemExit as exc:  # argparse errors exit through the parser
        rc = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert rc == code
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_missing_ledger_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "report", "--ledger", str(tmp_path / "x.sqlite")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("linguagate report: error: ledger file not found")
    assert "Traceback" not in proc.stderr
