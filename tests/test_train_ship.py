"""The shipped bundle holds only int8 + tokenizer and its manifest verifies without fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from onnx_export.train import pipeline
from policies.bundle import load_bundle, write_manifest


def _fake_export(ckpt: Path, full: Path) -> dict[str, Any]:
    full.mkdir(parents=True, exist_ok=True)
    for name, size in (("model.onnx", 40), ("model.int8.onnx", 10), ("tokenizer.json", 5)):
        (full / name).write_bytes(b"x" * size)
    return write_manifest(
        full,
        {
            "family": "bert",
            "keep_label": 1,
            "max_seq_len": 512,
            "do_lower_case": True,
            "variants": {
                "fp32": {"file": "model.onnx", "external_data": None},
                "int8": {"file": "model.int8.onnx", "external_data": None},
            },
        },
    )


def test_ship_bundle_lists_only_shipped_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "_export", _fake_export)
    out = tmp_path / "models" / "default"
    out.mkdir(parents=True)
    (out / "model.onnx").write_bytes(b"stale fp32")  # left over from an earlier export
    result = pipeline.ship_bundle(tmp_path / "ckpt", out, tmp_path / "work")
    assert sorted(result["files"]) == ["model.int8.onnx", "tokenizer.json"]
    assert not (out / "model.onnx").exists()
    assert (tmp_path / "work" / "bundle" / "model.onnx").is_file()  # fp32 kept for rebuilds
    bundle = load_bundle(out)  # verifies sizes and hashes
    assert set(bundle.variants) == {"int8"}
    assert bundle.family == "bert" and bundle.do_lower_case
    assert set(bundle.meta["variants"]) == {"int8"}
