"""LLMLingua-2 compression engine on ONNX Runtime.

Names are imported lazily so that ``linguagate compress --help`` (and anything
else importing ``policies.engine.cli``) does not load onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policies.engine.compressor import Compressor
    from policies.engine.pool import AsyncCompressor, EngineBusy

__all__ = ["AsyncCompressor", "Compressor", "EngineBusy"]


def __getattr__(name: str) -> Any:
    if name == "Compressor":
        from policies.engine.compressor import Compressor

        return Compressor
    if name in ("AsyncCompressor", "EngineBusy"):
        from policies.engine import pool

        return getattr(pool, name)
    raise AttributeError(name)
