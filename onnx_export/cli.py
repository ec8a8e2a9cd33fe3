"""``linguagate export MODEL --out DIR [--fp16] [--int8] [--no-optimize]``.

Only argparse at import time: the dispatcher imports every sub-command module to
build ``--help``, and torch must not load for that.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="Hugging Face hub id or local checkpoint directory")
    parser.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    parser.add_argument("--fp16", action="store_true", help="also write model.fp16.onnx (CUDA)")
    parser.add_argument("--int8", action="store_true", help="also write model.int8.onnx (CPU)")
    parser.add_argument(
        "--no-optimize", action="store_true", help="skip ONNX Runtime's transformer fusions"
    )
    parser.add_argument("--revision", default=None, help="hub branch, tag or commit")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the parity check against PyTorch"
    )


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        from onnx_export.export import export_bundle
        from onnx_export.source import ExportError
    except ImportError as exc:
        print(f"linguagate export: needs the [export] extra ({exc})", file=sys.stderr)
        return 2
    try:
        manifest = export_bundle(
            args.model,
            args.out,
            fp16=args.fp16,
            int8=args.int8,
            optimize=not args.no_optimize,
            check=not args.no_check,
            revision=args.revision,
            progress=progress,
        )
    except ExportError as exc:
        print(f"linguagate export: error: {exc}", file=sys.stderr)
        return 1
    variants = ", ".join(sorted(manifest["variants"]))
    print(f"{args.out}: {manifest['family']} bundle with {variants}")
    return 0
