"""``linguagate report``: print or write the savings report from a ledger file.

Only light modules are imported (sqlite3, csv, json): the CLI dispatcher
imports this at ``--help`` time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from proxy.report import FORMATS, GROUPINGS, parse_since


def _since(text: str) -> str:
    try:
        parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("invalid --since ")) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="P", help="read ledger.path from this config")
    src.add_argument("--ledger", metavar="FILE", help="ledger SQLite file")
    parser.add_argument(
        "--since",
        type=_since,
        default="7d",
        help="period: 30m, 12h, 7d, 2w, all, or an ISO date/time (default: 7d)",
    )
    parser.add_argument("--by", choices=GROUPINGS, default="route", help="grouping")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument("--output", metavar="FILE", help="write here instead of stdout")


def _fail(message: str, code: int = 1) -> int:
    print(f"linguagate report: error: {message}", file=sys.stderr)
    return code


def _ledger_path(args: argparse.Namespace) -> Path | str:
    """The ledger file, or an error message (str)."""
    if args.ledger:
        return Path(args.ledger)
    from policies.config import ConfigError, resolve_config

    try:
        config = resolve_config(args.config)
    except ConfigError as exc:
        first = str(exc.problems[0]) if exc.problems else str(exc)
        more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return f"invalid config: {first}{more}".replace("\n", " ")
    if not config.ledger.path:
        return "the ledger is disabled in this config (ledger.path is null)"
    return Path(config.ledger.path).expanduser()


def run(args: argparse.Namespace) -> int:
    from proxy.ledger_db import LedgerError, open_reader
    from proxy.report import build_report, to_csv, to_table
    from proxy.report_html import html_report

    path = _ledger_path(args)
    if isinstance(path, str):
        return _fail(path, 2)
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        conn = open_reader(path)
    except LedgerError as exc:
        return _fail(str(exc))
    try:
        if args.format == "html":
            text = html_report(conn, since, args.by)
        else:
            report = build_report(conn, since, args.by)
            if args.format == "json":
                text = json.dumps(report, indent=2) + "\n"
            elif args.format == "csv":
                text = to_csv(report)
            else:
                text = to_table(report)
    except Exception as exc:  # sqlite3.Error and friends: one line, no traceback
        return _fail(f"cannot read ledger {path}: {exc}")
    finally:
        conn.close()
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
