"""``linguagate compress`` and engine setup details (device choice, padding invariance)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from proxy.cli import main


def test_cli_json(
    tiny_bundle_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("The council met on Tuesday to discuss the library budget and the roof.\n")
    rc = main(["compress", str(src), "--rate", "0.5", "--model", str(tiny_bundle_bert), "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"compressed", "origin_tokens", "compressed_tokens", "rate", "ms"}
    assert 0 < data["compressed_tokens"] < data["origin_tokens"]


def test_cli_stdin_reference(
    tiny_bundle_xlmr: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello there, general Kenobi. " * 20))
    rc = main(
        [
            "compress",
            "-",
            "--target-tokens",
            "20",
            "--mode",
            "reference",
            "--model",
            str(tiny_bundle_xlmr),
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert captured.out.strip()
    assert "tokens" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["compress", "missing-file.txt", "--model", "x"],
        ["compress", "-", "--rate", "1.5"],
        ["compress", "-", "--target-tokens", "-3"],
        ["compress", "-", "--model", "/nonexistent/bundle"],
    ],
)
def test_cli_bad_args(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("some text"))
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_module_import_is_light() -> None:
    code = (
        "import sys, policies.engine.cli;"
        "bad = [m for m in ('onnxruntime', 'torch', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_auto_device_on_cpu_host(tiny_bundle_bert: Path) -> None:
    from policies.engine import Compressor

    comp = Compressor.from_bundle(tiny_bundle_bert, device="auto")
    assert comp.device == "cpu"  # no GPU in tests; ORT's silent fallback is detected


def test_dynamic_padding_matches_fixed(tiny_compressor_xlmr: Any) -> None:
    """Length-sorted, per-batch padding (the CUDA path) gives the same probabilities."""
    runner = tiny_compressor_xlmr.runner
    rng = np.random.default_rng(0)
    seqs = [rng.integers(5, 300, size=n).astype(np.int64) for n in (7, 130, 40, 512, 3)]
    fixed = runner.probs(seqs, fixed_len=512, pad_id=1)
    dynamic = runner.probs(seqs, fixed_len=None, pad_id=1, max_batch_tokens=600)
    for a, b in zip(fixed, dynamic, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_runtime_does_not_import_torch(tiny_bundle_bert: Path) -> None:
    code = (
        "import sys\n"
        "from policies.engine import Compressor\n"
        f"c = Compressor.from_bundle({str(tiny_bundle_bert)!r}, device='cpu')\n"
        "c.compress('some words to compress here', rate=0.5)\n"
        "c.compress('some words to compress here', rate=0.5, mode='reference')\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "sys.exit(1 if bad else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_io_binding_path_runs_on_cpu(tiny_compressor_bert: Any) -> None:
    """The CUDA code path (IO binding) exercised on the CPU EP: same logits as run()."""
    runner = tiny_compressor_bert.runner
    ids = np.array([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]], dtype=np.int64)
    mask = (np.arange(5)[None, :] < np.array([[5], [3]])).astype(np.int64)
    runner.io_device = "cpu"
    try:
        bound = runner._run_cuda(ids, mask)
    finally:
        runner.io_device = "cuda"
    plain = runner.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    np.testing.assert_allclose(bound, plain, atol=1e-6)


def test_int8_variant_is_default_on_cpu(
    tiny_checkpoint_bert: Path, tiny_compressor_bert: Any, tmp_path: Path
) -> None:
    """The proxy's CPU default (int8) loads and keeps nearly the same words as fp32."""
    from policies.engine import Compressor
    from tests.fixtures.models import build_bundle, sample_texts

    bundle = build_bundle(tiny_checkpoint_bert, tmp_path / "int8", int8=True)
    comp = Compressor.from_bundle(bundle, device="cpu")
    assert comp.runner.variant == "int8"
    same = total = 0
    for text in sample_texts()[:10]:
        a = comp.compress(text, rate=0.5, return_word_label=True)["fn_labeled_original_prompt"]
        b = tiny_compressor_bert.compress(text, rate=0.5, return_word_label=True)[
            "fn_labeled_original_prompt"
        ]
        la, lb = a.split("\t\t|\t\t"), b.split("\t\t|\t\t")
        assert len(la) == len(lb)
        total += len(la)
        same += sum(x == y for x, y in zip(la, lb, strict=True))
    assert same / total >= 0.85
