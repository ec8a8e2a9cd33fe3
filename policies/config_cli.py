"""``linguagate check-config P``: validate a configuration file, print every problem."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="P", help="YAML configuration file to validate")


def run(args: argparse.Namespace) -> int:
    from policies.config import ConfigError, load_config

    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{args.path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    compressing = sum(1 for route in config.routes if route.compress)
    print(
        f"{args.path}: ok ({len(config.routes)} routes, {compressing} compressing, "
        f"{len(config.upstreams)} upstreams)"
    )
    return 0
