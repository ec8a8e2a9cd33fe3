"""``linguagate`` command line: one sub-command per module, imported lazily.

Each sub-command lives next to the code it drives and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Importing lazily keeps
``linguagate serve`` from importing torch, and ``--help`` fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("proxy.serve_cli", "run the proxy"),
    "check-config": ("policies.config_cli", "validate a configuration file"),
    "compress": ("policies.engine.cli", "compress text offline"),
    "export": ("onnx_export.cli", "export a Hugging Face token classifier to a model bundle"),
    "report": ("proxy.report_cli", "print the savings report"),
    "train": ("onnx_export.train.cli", "train the compact default compressor"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that prints one line (not usage + traceback) on bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"linguagate: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="linguagate", description="LinguaGate prompt-compressing proxy")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # optional extra not installed; run() reports it
        module.add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(args._module)
    except ImportError as exc:
        print(
            f"linguagate {args.command}: unavailable ({exc}); install the needed extra",
            file=sys.stderr,
        )
        return 2
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
