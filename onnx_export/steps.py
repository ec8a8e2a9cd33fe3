"""Running a heavy export step in this process or in a child process.

XLM-R-large needs several GB per step (the torch model, the 2.2 GB protobuf, the
quantiser's copies); a child process returns all of it to the OS when it exits.
Small models run in-process, which is faster and keeps tests simple.
Protocol: ``python -m onnx_export.<module> SPEC.json RESULT.json``; the spec holds
the keyword arguments, the result file the returned dict (or the error).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from onnx_export.source import ExportError

ISOLATE_ENV = "LINGUAGATE_EXPORT_ISOLATE"  # "1" always, "0" never, unset: by model size
ISOLATE_ABOVE_BYTES = 300 * 1024 * 1024


def should_isolate(weights_bytes: int) -> bool:
    setting = os.environ.get(ISOLATE_ENV, "")
    if setting in ("0", "1"):
        return setting == "1"
    return weights_bytes > ISOLATE_ABOVE_BYTES


def run_step(module: str, func: str, kwargs: dict[str, Any], isolate: bool) -> dict[str, Any]:
    """Call ``onnx_export.<module>.<func>(**kwargs)``, in a child process if ``isolate``."""
    if not isolate:
        mod = importlib.import_module(f"onnx_export.{module}")
        result: dict[str, Any] = getattr(mod, func)(**kwargs)
        return result
    with tempfile.TemporaryDirectory(prefix="linguagate-step-") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({"func": func, "kwargs": kwargs}))
        proc = subprocess.run(
            [sys.executable, "-m", f"onnx_export.{module}", str(spec), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if out.is_file():
            payload = json.loads(out.read_text())
            if "error" in payload:
                raise ExportError(payload["error"])
            if proc.returncode == 0:
                return dict(payload["result"])
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        killed = " (killed: out of memory?)" if proc.returncode in (-9, 137) else ""
        raise ExportError(
            f"step {module}.{func} failed with exit code {proc.returncode}{killed}:\n{tail}"
        )


def step_main(*funcs: Callable[..., dict[str, Any]]) -> int:
    """Entry point of a step module run as ``python -m``: dispatch by name from the spec."""
    spec_path, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_path.read_text())
    by_name = {f.__name__: f for f in funcs}
    try:
        result = by_name[spec["func"]](**spec["kwargs"])
    except ExportError as exc:
        result_path.write_text(json.dumps({"error": str(exc)}))
        return 1
    result_path.write_text(json.dumps({"result": result}))
    return 0


@contextmanager
def quiet_logging() -> Iterator[None]:
    """Silence ORT's optimiser/quantiser advice logged at WARNING (module and root loggers)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
