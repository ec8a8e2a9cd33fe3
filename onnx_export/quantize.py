"""Smaller, faster variants of the fp32 graph: fp16 for CUDA, int8 for CPU.

fp16 keeps fp32 inputs/outputs (``keep_io_types``) so the engine feeds and reads
the same arrays for every variant. int8 is dynamic quantisation; after fusion the
quantiser cannot infer types of the com.microsoft ops, hence ``DefaultTensorType``.

Run alone: ``python -m onnx_export.quantize SPEC.json RESULT.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from onnx_export.optimize import PROTOBUF_LIMIT
from onnx_export.steps import quiet_logging, step_main


def to_fp16(fp32_path: str, out_path: str) -> dict[str, Any]:
    """Convert weights and compute to float16, keeping float32 graph inputs/outputs."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(fp32_path))
    with quiet_logging():
        model.convert_float_to_float16(keep_io_types=True)
    big = model.model.ByteSize() > PROTOBUF_LIMIT
    model.save_model_to_file(out_path, use_external_data_format=big)
    return {"external_data": big}


def to_int8(fp32_path: str, out_path: str, per_channel: bool = False) -> dict[str, Any]:
    """Dynamic int8 quantisation of weights (activations quantised at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for stale in (Path(out_path), Path(out_path + ".data")):
        stale.unlink(missing_ok=True)
    with quiet_logging():
        quantize_dynamic(
            fp32_path,
            out_path,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return {"per_channel": per_channel, "weight_type": "QInt8"}


if __name__ == "__main__":
    sys.exit(step_main(to_fp16, to_int8))
