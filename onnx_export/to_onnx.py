"""PyTorch checkpoint to a raw ONNX graph, plus the reference logits for parity.

Legacy exporter (``dynamo=False``, opset 17) on an ``attn_implementation="eager"``
model: that is the combination for which ONNX Runtime's transformer optimizer
still recognises and fuses the attention subgraph (SDPA or dynamo graphs give
Attention 0). The reference logits are computed here because this is the only
step that has the torch model in memory.

Run alone to bound memory: ``python -m onnx_export.to_onnx SPEC.json RESULT.json``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from onnx_export import parity
from onnx_export.steps import step_main

OPSET = 17


def export_onnx(
    local_dir: str,
    onnx_path: str,
    tokenizer_path: str,
    reference_path: str | None,
    max_seq_len: int,
    pad_id: int,
) -> dict[str, Any]:
    """Write the raw graph to ``onnx_path`` and (if asked) reference logits to a .npz."""
    import torch
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForTokenClassification.from_pretrained(
        local_dir, attn_implementation="eager", dtype=torch.float32
    )
    model.eval()
    wrapped = _LogitsOnly(model)
    ids = torch.full((2, 8), 5, dtype=torch.int64)
    mask = torch.ones((2, 8), dtype=torch.int64)
    mask[1, 5:] = 0  # a padded row, so nothing mask-dependent is traced as a constant
    axes = {0: "batch", 1: "seq"}
    with warnings.catch_warnings(), torch.no_grad():
        # Expected, harmless warnings of the legacy exporter and of tracing HF code
        # (shape checks traced as constants; index ops with non-negative indices).
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript", DeprecationWarning
        )
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        warnings.filterwarnings("ignore", "Exporting aten::index operator", UserWarning)
        # TracerWarnings (HF and torch.nn code traced with Python conditionals) only say
        # a value became a constant; parity with padded, variable-length inputs checks that.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            wrapped,
            (ids, mask),
            onnx_path,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
            do_constant_folding=True,
        )
    if reference_path:
        samples = parity.encode_samples(Path(tokenizer_path), max_seq_len, pad_id)
        arrays = dict(samples)
        with torch.no_grad():
            for group in parity.GROUPS:
                logits = wrapped(
                    torch.from_numpy(samples[f"{group}_ids"]),
                    torch.from_numpy(samples[f"{group}_mask"]),
                )
                arrays[f"{group}_logits"] = logits.numpy().astype(np.float64)
        np.savez(reference_path, **arrays)  # type: ignore[arg-type]
    return {"opset": OPSET, "exporter": f"torch.onnx legacy (torch {torch.__version__})"}


class _LogitsOnly:
    """Callable module wrapper whose forward returns just the logits tensor."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class LogitsOnly(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

        return LogitsOnly(model).eval()


if __name__ == "__main__":
    sys.exit(step_main(export_onnx))
