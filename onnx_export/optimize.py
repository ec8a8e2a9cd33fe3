"""ONNX Runtime transformer fusions (Attention, SkipLayerNorm, BiasGelu...).

The fused ``Attention`` op is what lets the CUDA EP use its fused/flash MHA
kernels, and the optimizer's pattern matcher silently stops matching whenever HF
changes its modeling code, so a graph without it is treated as a failed export.
``opt_level=0`` keeps only the Python fusions, so the saved graph stays portable
between the CPU and CUDA execution providers.

Run alone: ``python -m onnx_export.optimize SPEC.json RESULT.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from onnx_export.source import ExportError
from onnx_export.steps import quiet_logging, step_main

PROTOBUF_LIMIT = 2_000_000_000  # bytes; bigger graphs must keep weights in a .data file
REPORTED_OPS = (
    "Attention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "LayerNormalization",
    "BiasGelu",
    "Gelu",
    "FastGelu",
)


def weights_bytes(onnx_path: Path) -> int:
    """Size of a model file plus any external data next to it (per-tensor or single file)."""
    files = [onnx_path] + [p for p in onnx_path.parent.iterdir() if p != onnx_path]
    if len(files) == 1:
        return onnx_path.stat().st_size
    return sum(p.stat().st_size for p in files if p.is_file())


def optimize(
    raw_path: str, out_path: str, num_heads: int, hidden_size: int, require_attention: bool = True
) -> dict[str, Any]:
    """Fuse ``raw_path`` into ``out_path``; return the fused-operator counts."""
    from onnxruntime.transformers import optimizer

    with quiet_logging():
        model = optimizer.optimize_model(
            raw_path, model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0
        )
    stats = model.get_fused_operator_statistics()
    fused = {op: int(stats.get(op, 0)) for op in REPORTED_OPS}
    if require_attention and fused["Attention"] == 0:
        raise ExportError(
            "ONNX Runtime's optimizer fused no Attention op "
            f"(fused: {fused}); the attention pattern of this transformers version is not "
            "recognised. Use --no-optimize to ship the unfused graph."
        )
    big = weights_bytes(Path(raw_path)) > PROTOBUF_LIMIT
    model.save_model_to_file(out_path, use_external_data_format=big)
    return {"fused_ops": fused, "external_data": big}


def save_unoptimized(raw_path: str, out_path: str) -> dict[str, Any]:
    """Copy the raw export into the bundle as one file (+ one .data file when > 2 GB)."""
    import onnx

    big = weights_bytes(Path(raw_path)) > PROTOBUF_LIMIT
    model = onnx.load(raw_path)
    if big:
        onnx.save(
            model,
            out_path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=Path(out_path).name + ".data",
        )
    else:
        onnx.save(model, out_path)
    return {"external_data": big}


if __name__ == "__main__":
    sys.exit(step_main(optimize, save_unoptimized))
