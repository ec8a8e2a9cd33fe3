"""onnx_export pieces that need no export: sources, metadata, step isolation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from onnx_export import parity, steps
from onnx_export.bundle_writer import do_lower_case, write_tokenizer
from onnx_export.source import ExportError, checkpoint_meta, local_revision, resolve_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_local_revision_tracks_weights(tiny_checkpoint_bert: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint_bert, copy)
    assert local_revision(copy) == local_revision(tiny_checkpoint_bert)
    weights = copy / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))
    assert local_revision(copy) != local_revision(tiny_checkpoint_bert)


def test_hub_id_resolves_to_snapshot_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    snapshot = tmp_path / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    seen: dict[str, Any] = {}

    def fake_download(repo_id: str, **kwargs: Any) -> str:
        seen.update(repo_id=repo_id, **kwargs)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    source = resolve_source("microsoft/llmlingua-2-xlm-roberta-large-meetingbank", "main")
    assert source.kind == "hub" and source.revision == COMMIT
    assert source.local_dir == snapshot
    assert seen["repo_id"] == "microsoft/llmlingua-2-xlm-roberta-large-meetingbank"
    assert seen["revision"] == "main" and "*.safetensors" in seen["allow_patterns"]


def test_hub_failure_is_an_export_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id: str, **kwargs: Any) -> str:
        raise LocalEntryNotFoundError("outgoing traffic has been disabled")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(
        ExportError, match=r"cannot download 'org/model'.*traffic has been disabled"
    ):
        resolve_source("org/model")


def test_bad_local_paths(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such checkpoint directory"):
        resolve_source(str(tmp_path / "missing"))
    with pytest.raises(ExportError, match=r"not a Hugging Face checkpoint \(no config.json\)"):
        resolve_source(tmp_path)


def test_checkpoint_meta(tmp_path: Path) -> None:
    base = {
        "vocab_size": 250102,
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
    }
    (tmp_path / "config.json").write_text(
        json.dumps(
            {**base, "model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}
        )
    )
    meta = checkpoint_meta(tmp_path)
    assert (meta["family"], meta["max_seq_len"], meta["num_labels"]) == ("xlm-roberta", 512, 2)
    (tmp_path / "config.json").write_text(
        json.dumps(
            {**base, "model_type": "bert", "max_position_embeddings": 512, "pad_token_id": 0}
        )
    )
    assert checkpoint_meta(tmp_path)["max_seq_len"] == 512
    (tmp_path / "config.json").write_text(json.dumps({**base, "model_type": "gpt2"}))
    with pytest.raises(ExportError, match="unsupported model_type 'gpt2'"):
        checkpoint_meta(tmp_path)


def test_do_lower_case_from_normalizer() -> None:
    assert do_lower_case({"normalizer": {"type": "BertNormalizer", "lowercase": True}})
    assert not do_lower_case({"normalizer": {"type": "BertNormalizer", "lowercase": False}})
    seq = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]}
    assert do_lower_case({"normalizer": seq})
    assert not do_lower_case({"normalizer": None})


def test_keep_decision_and_compare() -> None:
    logits = np.array([[[0.0, 1.0], [2.0, -1.0], [0.0, 0.0]]])
    assert parity.keep_decisions(logits, 1).tolist() == [[True, False, False]]
    mask = np.array([[1, 1, 0]])
    ref = {f"{g}_{k}": v for g in parity.GROUPS for k, v in (("mask", mask), ("logits", logits))}
    flipped = logits.copy()
    flipped[0, 0] = [1.0, 0.0]  # one of 2 valid tokens flips
    flipped[0, 2] = [9.0, -9.0]  # padding is ignored
    result = parity.compare(ref, dict.fromkeys(parity.GROUPS, flipped), keep_label=1)
    assert result == {"max_abs_logit_diff": 1.0, "keep_agreement": 0.5, "tokens": 4}


def test_sample_texts_cover_short_to_full_window() -> None:
    texts = parity.sample_texts()
    assert [len(t.split()) for t in texts] == parity.SAMPLE_WORDS
    assert texts == parity.sample_texts()  # deterministic


def test_isolated_step_reports_child_failure(tmp_path: Path) -> None:
    with pytest.raises(
        ExportError, match=r"step optimize.save_unoptimized failed with exit code 1"
    ):
        steps.run_step(
            "optimize",
            "save_unoptimized",
            {"raw_path": str(tmp_path / "none.onnx"), "out_path": str(tmp_path / "o.onnx")},
            isolate=True,
        )


def test_isolate_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(steps.ISOLATE_ENV, raising=False)
    assert not steps.should_isolate(10_000_000)
    assert steps.should_isolate(2_000_000_000)
    monkeypatch.setenv(steps.ISOLATE_ENV, "1")
    assert steps.should_isolate(0)
    monkeypatch.setenv(steps.ISOLATE_ENV, "0")
    assert not steps.should_isolate(2_000_000_000)


def test_missing_vocabulary_is_an_export_error(tiny_checkpoint_bert: Path, tmp_path: Path) -> None:
    """A checkpoint without its vocab files must not export a specials-only tokenizer."""
    ckpt = tmp_path / "bert-base-multilingual-cased-novocab"
    shutil.copytree(tiny_checkpoint_bert, ckpt)
    for name in ("tokenizer.json", "vocab.txt"):
        (ckpt / name).unlink(missing_ok=True)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ExportError, match="vocabulary"):
        write_tokenizer(ckpt, out, vocab_size=10_000)
    assert not (out / "tokenizer.json").exists()
