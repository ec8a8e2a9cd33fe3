"""``linguagate compress``: compress a file or stdin offline.

Only argparse-level imports at module import time: the dispatcher imports every
sub-command module to build ``--help``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", help="text file, or - for stdin")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--rate", type=float, default=None, help="fraction of tokens to keep")
    budget.add_argument("--target-tokens", type=int, default=None, help="token budget")
    parser.add_argument(
        "--model", default=None, help='bundle directory (default: config "model.path")'
    )
    parser.add_argument("--mode", choices=("faithful", "reference"), default="faithful")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def _fail(msg: str) -> int:
    print(f"linguagate compress: error: {msg}", file=sys.stderr)
    return 2


def _model_settings(args: argparse.Namespace) -> tuple[str, str, str | None, int]:
    path, device, variant, threads = "default", "auto", None, 0
    try:
        from policies.config import resolve_config

        cfg = resolve_config(None).model
        path, device = cfg.path, cfg.device
        variant, threads = cfg.variant, cfg.threads
    except Exception:
        pass  # config module missing or invalid: plain defaults still work offline
    if args.model:
        path = args.model
    if args.device:
        device = args.device
    return path, device, variant, threads


def run(args: argparse.Namespace) -> int:
    if args.rate is not None and not 0 <= args.rate <= 1:
        return _fail(f"--rate must be between 0 and 1, got {args.rate}")
    if args.target_tokens is not None and args.target_tokens < 0:
        return _fail(f"--target-tokens must be >= 0, got {args.target_tokens}")
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as fh:
                text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {args.file}: {exc}")

    from policies.bundle import BundleError, resolve_model_path
    from policies.engine.compressor import Compressor

    path, device, variant, threads = _model_settings(args)
    try:
        comp = Compressor.from_bundle(resolve_model_path(path), device, variant, threads)
    except (BundleError, RuntimeError, ValueError, OSError) as exc:
        return _fail(f"cannot load model {path}: {exc}")
    options: dict[str, object] = {"mode": args.mode}
    if args.target_tokens is not None:
        options["target_token"] = args.target_tokens
        options["rate"] = 0.5
    else:
        options["rate"] = 0.5 if args.rate is None else args.rate
    t0 = time.perf_counter()
    try:
        res = comp.compress(text, **options)  # type: ignore[arg-type]
    except ValueError as exc:
        return _fail(str(exc))
    ms = (time.perf_counter() - t0) * 1000
    if args.json:
        out = {
            "compressed": res["compressed_prompt"],
            "origin_tokens": res["origin_tokens"],
            "compressed_tokens": res["compressed_tokens"],
            "rate": res["rate"],
            "ms": round(ms, 1),
        }
        print(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write(res["compressed_prompt"])
        if not res["compressed_prompt"].endswith("\n"):
            sys.stdout.write("\n")
        print(
            f"{res['origin_tokens']} -> {res['compressed_tokens']} tokens "
            f"({res['rate']}) in {ms:.0f} ms",
            file=sys.stderr,
        )
    return 0
