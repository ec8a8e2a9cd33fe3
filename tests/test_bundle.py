"""Bundle format: a corrupt or incomplete bundle must fail at load with a clear BundleError.

These use placeholder file contents: ``load_bundle`` checks the manifest and the
hashes, not whether the bytes are a valid ONNX graph (the export tests cover that).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.bundle import MANIFEST, BundleError, load_bundle, write_manifest

META = {"family": "bert", "keep_label": 1, "max_seq_len": 512, "source": {"model": "x"}}


def make_bundle(
    root: Path, *, data: bool = False, variants: tuple[str, ...] = ("model.onnx",)
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tokenizer.json").write_text('{"model": {}}')
    for name in variants:
        (root / name).write_bytes(bytes(range(256)) * 8)
    if data:
        (root / "model.onnx.data").write_bytes(b"\x01" * 4096)
    write_manifest(root, META)
    return root


def test_good_bundle_loads(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle(tmp_path / "b", variants=("model.onnx", "model.int8.onnx")))
    assert bundle.family == "bert"
    assert bundle.keep_label == 1 and bundle.max_seq_len == 512
    assert set(bundle.variants) == {"fp32", "int8"}
    assert bundle.pick_variant("cpu") == "int8"
    assert bundle.pick_variant("cuda") == "fp32"
    with pytest.raises(BundleError, match="no 'fp16' variant"):
        bundle.pick_variant("cuda", "fp16")


def test_external_data_is_listed_and_verified(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b", data=True)
    assert "model.onnx.data" in json.loads((root / MANIFEST).read_text())["files"]
    load_bundle(root)
    (root / "model.onnx.data").unlink()
    with pytest.raises(BundleError, match=r"incomplete: model\.onnx\.data is missing"):
        load_bundle(root)


def _flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "model.onnx.data"])
def test_flipped_byte_fails(tmp_path: Path, name: str) -> None:
    root = make_bundle(tmp_path / "b", data=True)
    _flip_byte(root / name)
    with pytest.raises(BundleError, match=f"{name} does not match its sha256"):
        load_bundle(root)
    load_bundle(root, verify=False)  # hashes are the only thing that catches this


def test_truncated_file_fails(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    path = root / "model.onnx"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(BundleError, match="truncated or replaced"):
        load_bundle(root)


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json"])
def test_missing_file_fails(tmp_path: Path, name: str) -> None:
    root = make_bundle(tmp_path / "b")
    (root / name).unlink()
    with pytest.raises(BundleError, match=f"incomplete: {name} is missing"):
        load_bundle(root)


def test_missing_manifest_or_directory(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    (root / MANIFEST).unlink()
    with pytest.raises(BundleError, match=r"has no linguagate\.json"):
        load_bundle(root)
    with pytest.raises(BundleError, match="is not a directory"):
        load_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: "{not json", "unreadable manifest"),
        (lambda m: "[1, 2]", "unsupported bundle format 'list'"),
        (lambda m: {**m, "format": 99}, "unsupported bundle format 99"),
        (lambda m: {**m, "family": "gpt2"}, "unknown model family 'gpt2'"),
        (lambda m: {**m, "keep_label": "1"}, "bad keep_label '1'"),
        (lambda m: {**m, "max_seq_len": 0}, "bad max_seq_len 0"),
        (lambda m: {**m, "files": {}}, "lists no tokenizer.json"),
        (
            lambda m: {**m, "files": {"tokenizer.json": m["files"]["tokenizer.json"]}},
            "contains no ONNX model",
        ),
        (lambda m: {**m, "files": {**m["files"], "../x": {}}}, "bad files entry '../x'"),
        (lambda m: {**m, "files": {**m["files"], "model.onnx": "abc"}}, "bad files entry"),
    ],
)
def test_bad_manifest_fails(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    root = make_bundle(tmp_path / "b")
    manifest = json.loads((root / MANIFEST).read_text())
    new = edit(manifest)
    (root / MANIFEST).write_text(new if isinstance(new, str) else json.dumps(new))
    with pytest.raises(BundleError, match=message):
        load_bundle(root)
