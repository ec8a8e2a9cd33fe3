"""onnx_export: tiny LLMLingua-2-shaped checkpoints to fused, parity-checked bundles.

A 2-layer config shows the same fusion pattern as the real models (see the ONNX
Runtime notes), so ``Attention > 0`` here guards against exporter/optimiser drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from onnx_export import parity
from onnx_export.export import PARITY_FAILED, export_bundle
from onnx_export.source import ExportError
from policies.bundle import MANIFEST, BundleError, load_bundle

FAMILIES = ["xlm-roberta", "bert"]
TEXT = (
    "The council met on Tuesday to discuss the budget for the new park. "
    "Several members asked about the cost of water and street repairs, and the "
    "staff report listed 17 items. The motion was approved after a short debate. "
) * 4


@pytest.fixture(scope="module", params=FAMILIES)
def exported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, Path, dict[str, Any]]:
    """(family, checkpoint, bundle, manifest) with all three variants."""
    family = request.param
    fixture = "tiny_checkpoint_xlmr" if family == "xlm-roberta" else "tiny_checkpoint_bert"
    checkpoint: Path = request.getfixturevalue(fixture)
    out = tmp_path_factory.mktemp("export") / family
    messages: list[str] = []
    manifest = export_bundle(checkpoint, out, fp16=True, int8=True, progress=messages.append)
    for step in ("download", "tokenizer", "export", "optimize", "fp16", "int8", "check"):
        assert any(m.startswith(f"{step}: done in ") for m in messages), step
    return family, checkpoint, out, manifest


def _torch_logits(checkpoint: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import torch
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(str(checkpoint)).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    return np.asarray(out.logits.numpy())


def _encode(bundle: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tok.enable_truncation(max_length=512)
    encs = [e.ids for e in tok.encode_batch(texts)]
    width = max(map(len, encs))
    pad = 1 if load_bundle(bundle).family == "xlm-roberta" else 0
    ids = np.full((len(encs), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e)], mask[i, : len(e)] = e, 1
    return ids, mask


def test_manifest_records_source_and_model_facts(exported: Any) -> None:
    family, _, out, manifest = exported
    assert manifest["family"] == family
    assert manifest["keep_label"] == 1
    assert manifest["max_seq_len"] == 512  # XLM-R: 514 positions minus the offset of 2
    assert manifest["do_lower_case"] is False
    assert manifest["source"]["kind"] == "local"
    assert manifest["source"]["revision"].startswith("sha256:")
    assert manifest["model"]["placeholder_tokens"] == 100
    assert manifest["model"]["tokenizer_size"] == manifest["model"]["vocab_size"]
    assert set(manifest["variants"]) == {"fp32", "fp16", "int8"}
    assert manifest["variants"]["fp32"] == {"file": "model.onnx", "external_data": None}
    assert set(manifest["files"]) == {
        "tokenizer.json",
        "model.onnx",
        "model.fp16.onnx",
        "model.int8.onnx",
    }
    assert not (out / PARITY_FAILED).exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".export-")]  # work dir removed
    assert json.loads((out / MANIFEST).read_text()) == manifest


def test_attention_layernorm_gelu_are_fused(exported: Any) -> None:
    _, _, out, manifest = exported
    fused = manifest["onnx"]["fused_ops"]
    assert fused["Attention"] == 2  # one per layer
    assert fused["SkipLayerNormalization"] > 0
    assert fused["BiasGelu"] + fused["Gelu"] + fused["FastGelu"] > 0
    ops = {
        n.op_type for n in onnx.load(str(out / "model.onnx"), load_external_data=False).graph.node
    }
    assert "Attention" in ops
    graph = onnx.load(str(out / "model.fp16.onnx"), load_external_data=False).graph
    assert [i.type.tensor_type.elem_type for i in graph.input] == [onnx.TensorProto.INT64] * 2
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types


def test_parity_results_recorded(exported: Any) -> None:
    _, _, _, manifest = exported
    results = manifest["parity"]
    assert results["checked"] is True
    assert results["fp32"]["keep_agreement"] == 1.0
    assert results["fp32"]["max_abs_logit_diff"] < 1e-4
    assert results["int8"]["keep_agreement"] >= 0.99
    # fp16 either ran on the CPU EP and passed, or is honestly marked as unchecked.
    assert results["fp16"]["status"] in ("passed", parity.NOT_CHECKED_FP16)
    assert results["fp32"]["tokens"] > 512  # a full window plus the shorter samples


def test_tokenizer_has_placeholders(exported: Any) -> None:
    from tokenizers import Tokenizer

    _, _, out, manifest = exported
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    base = manifest["model"]["vocab_size"] - 100
    assert tok.token_to_id("[NEW0]") == base
    assert tok.token_to_id("[NEW99]") == base + 99
    assert tok.encode("a [NEW3] b").ids.count(base + 3) == 1


def test_each_variant_runs_and_fp32_matches_torch(exported: Any) -> None:
    import onnxruntime as ort

    _, checkpoint, out, _ = exported
    ids, mask = _encode(out, [TEXT, "Short one.", TEXT[:300]])
    expected = _torch_logits(checkpoint, ids, mask)
    valid = mask.astype(bool)
    for name, tol in (("model.onnx", 1e-4), ("model.fp16.onnx", 0.05), ("model.int8.onnx", 0.5)):
        session = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        (logits,) = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
        assert logits.dtype == np.float32 and logits.shape == (*ids.shape, 2)
        assert np.abs(logits[valid] - expected[valid]).max() < tol, name


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8"])
def test_engine_compresses_with_each_variant(exported: Any, variant: str) -> None:
    try:
        from policies.engine import Compressor
    except ImportError as exc:
        pytest.skip(f"policies.engine.Compressor not available yet ({exc})")
    _, _, out, _ = exported
    comp = Compressor.from_bundle(out, device="cpu", variant=variant)
    result = comp.compress(TEXT, rate=0.5)
    assert 0 < len(result["compressed_prompt"]) < len(TEXT)


def test_no_optimize_keeps_plain_graph(tiny_checkpoint_bert: Path, tmp_path: Path) -> None:
    manifest = export_bundle(tiny_checkpoint_bert, tmp_path / "b", optimize=False)
    assert manifest["onnx"]["optimized"] is False and manifest["onnx"]["fused_ops"] == {}
    ops = {n.op_type for n in onnx.load(str(tmp_path / "b" / "model.onnx")).graph.node}
    assert "Attention" not in ops and "MatMul" in ops
    assert set(load_bundle(tmp_path / "b").variants) == {"fp32"}


def test_failed_parity_writes_no_manifest(
    tiny_checkpoint_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(parity.MIN_AGREEMENT, "fp32", 1.5)  # unreachable
    out = tmp_path / "b"
    with pytest.raises(ExportError, match=r"parity check failed: fp32: keep agreement 100\.00%"):
        export_bundle(tiny_checkpoint_bert, out)
    assert not (out / MANIFEST).exists()
    assert json.loads((out / PARITY_FAILED).read_text())["fp32"]["passed"] is False


def test_int8_falls_back_to_per_channel(
    tiny_checkpoint_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = parity.check_variant
    calls: list[str] = []

    def first_int8_fails(**kwargs: Any) -> dict[str, Any]:
        result = real(**kwargs)
        calls.append(kwargs["variant"])
        if calls.count("int8") == 1 and kwargs["variant"] == "int8":
            result = {**result, "passed": False, "status": "failed"}
        return result

    monkeypatch.setattr(parity, "check_variant", first_int8_fails)
    manifest = export_bundle(tiny_checkpoint_bert, tmp_path / "b", int8=True)
    assert calls == ["fp32", "int8", "int8"]
    assert manifest["onnx"]["int8"]["per_channel"] is True
    assert manifest["parity"]["int8"]["passed"] is True


def test_reexport_removes_stale_variants(tiny_checkpoint_xlmr: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    export_bundle(tiny_checkpoint_xlmr, out, int8=True, check=False)
    manifest = export_bundle(tiny_checkpoint_xlmr, out, check=False)
    assert set(manifest["variants"]) == {"fp32"}
    assert not (out / "model.int8.onnx").exists()
    assert manifest["parity"] == {"checked": False, "samples_words": parity.SAMPLE_WORDS}


def test_out_dir_must_not_be_the_checkpoint(tiny_checkpoint_bert: Path) -> None:
    with pytest.raises(ExportError, match="is the checkpoint directory"):
        export_bundle(tiny_checkpoint_bert, tiny_checkpoint_bert)
    assert (tiny_checkpoint_bert / "tokenizer.json").exists()  # nothing was cleared


def test_large_models_use_external_data(
    tiny_checkpoint_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models over protobuf's 2 GB limit (XLM-R-large fp32) ship as model.onnx + model.onnx.data."""
    import onnx_export.optimize
    import onnx_export.quantize

    monkeypatch.setattr(onnx_export.optimize, "PROTOBUF_LIMIT", 10_000)
    monkeypatch.setattr(onnx_export.quantize, "PROTOBUF_LIMIT", 10_000)
    out = tmp_path / "b"
    manifest = export_bundle(tiny_checkpoint_bert, out, fp16=True, int8=True)
    assert manifest["variants"]["fp32"]["external_data"] == "model.onnx.data"
    assert manifest["variants"]["fp16"]["external_data"] == "model.fp16.onnx.data"
    assert manifest["variants"]["int8"]["external_data"] is None
    assert {"model.onnx.data", "model.fp16.onnx.data"} <= set(manifest["files"])
    assert (out / "model.onnx").stat().st_size < 100_000  # weights are in the .data file
    assert manifest["parity"]["fp32"]["passed"] is True
    bundle = load_bundle(out)
    assert set(bundle.variants) == {"fp32", "fp16", "int8"}
    (out / "model.onnx.data").write_bytes(b"")
    with pytest.raises(BundleError, match=r"model\.onnx\.data has 0 bytes"):
        load_bundle(out)
