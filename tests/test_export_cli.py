"""``linguagate export``: end to end through the dispatcher, failures as one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from onnx_export import parity
from policies.bundle import load_bundle
from proxy.cli import main


def test_export_int8_end_to_end(
    tiny_checkpoint_xlmr: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_checkpoint_xlmr), "--out", str(out), "--int8"]) == 0
    captured = capsys.readouterr()
    assert "xlm-roberta bundle with fp32, int8" in captured.out
    for step in ("download", "export", "optimize", "int8", "check"):
        assert f"{step}: done in" in captured.err
    assert "Attention 2" in captured.err
    bundle = load_bundle(out)
    assert set(bundle.variants) == {"fp32", "int8"}
    assert bundle.meta["parity"]["int8"]["passed"] is True


def test_failing_parity_exits_nonzero(
    tiny_checkpoint_bert: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(parity.MIN_AGREEMENT, "int8", 1.5)  # per-channel retry cannot reach it
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_checkpoint_bert), "--out", str(out), "--int8"]) == 1
    err = capsys.readouterr().err
    assert "retrying int8 per-channel" in err
    assert "linguagate export: error: parity check failed: int8: keep agreement" in err
    assert "Traceback" not in err
    assert not (out / "linguagate.json").exists()


def test_missing_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("linguagate export: error: ")
    assert "no such checkpoint directory" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["export"],
        ["export", "m"],
        ["export", "m", "--out"],
        ["export", "m", "--out", "d", "--bogus"],
    ],
)
def test_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("linguagate: error: ")


def test_cli_module_does_not_import_torch() -> None:
    heavy = "{'torch', 'onnxruntime', 'transformers'}"
    code = f"import sys, onnx_export.cli; print(sorted({heavy} & set(sys.modules)))"
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert proc.stdout.strip() == "[]"
