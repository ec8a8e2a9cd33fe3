"""``Compressor``: one loaded bundle, both modes, thread-safe ``compress``.

Modes are generators that yield inference requests; ``compress`` answers them
immediately, while the async pool (pool.py) gathers requests from concurrent
calls into shared ORT runs. Keeping model execution outside the modes is what
makes cross-request micro-batching possible without duplicating mode logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policies.bundle import load_bundle
from policies.engine.faithful import FaithfulMode, FaithfulOptions
from policies.engine.reference import ReferenceMode, RefOptions
from policies.engine.session import OrtRunner
from policies.engine.tokenization import EngineTokenizer
from policies.engine.words import InferRequest, ModeGen

MODES = ("faithful", "reference")


class Compressor:
    """LLMLingua-2 compressor over an ONNX bundle."""

    def __init__(
        self,
        tokenizer: EngineTokenizer,
        runner: OrtRunner,
        max_batch_tokens: int = 16384,
        max_seq_len: int = 512,
    ):
        self.tokenizer = tokenizer
        self.runner = runner
        self.max_batch_tokens = max_batch_tokens
        self.reference = ReferenceMode(tokenizer)  # llmlingua hard-codes 512
        self.faithful = FaithfulMode(tokenizer, max_seq_len=max_seq_len)

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        device: str = "auto",
        variant: str | None = None,
        threads: int = 0,
        max_batch_tokens: int = 16384,
    ) -> Compressor:
        bundle = load_bundle(path)
        tk = EngineTokenizer(str(bundle.tokenizer_path), bundle.family)
        runner = OrtRunner(bundle, device, variant, threads)
        return cls(tk, runner, max_batch_tokens, max_seq_len=bundle.max_seq_len)

    @property
    def device(self) -> str:
        return self.runner.device

    # ------------------------------------------------------------------------------
    def start(self, context: str | Sequence[str], **kwargs: Any) -> ModeGen:
        """Validate arguments and return the mode generator (no inference yet)."""
        mode = kwargs.pop("mode", "faithful")
        contexts = [context] if isinstance(context, str) else [str(c) for c in context]
        if mode == "reference":
            bad = {"protected_spans", "encoding"} & {k for k, v in kwargs.items() if v is not None}
            if bad:
                raise ValueError(f"{', '.join(sorted(bad))} only apply to faithful mode")
            kwargs.pop("protected_spans", None)
            kwargs.pop("encoding", None)
            return self.reference.run(contexts, RefOptions(**_tuples(kwargs)))
        if mode == "faithful":
            return self.faithful.run(contexts, FaithfulOptions(**_tuples(kwargs)))
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")

    def infer(self, req: InferRequest, max_batch_tokens: int | None = None) -> list[np.ndarray]:
        """Probabilities for a request; on CUDA always padded per batch, not to 512."""
        fixed = req.fixed_len if self.runner.device == "cpu" else None
        return self.runner.probs(
            req.seqs,
            fixed_len=fixed,
            pad_id=req.pad_id,
            max_batch_tokens=max_batch_tokens or self.max_batch_tokens,
        )

    def compress(self, context: str | Sequence[str], **kwargs: Any) -> dict[str, Any]:
        """Compress ``context`` (see docs/design.md for the options). Thread-safe."""
        gen = self.start(context, **kwargs)
        return drive(gen, self.infer)


def drive(gen: ModeGen, infer: Any) -> dict[str, Any]:
    """Run a mode generator to completion, answering each request with ``infer``."""
    try:
        req = next(gen)
        while True:
            req = gen.send(infer(req))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _tuples(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Lists from callers become tuples (options are immutable and hashable)."""
    out = {}
    for k, v in kwargs.items():
        if k in ("force_tokens", "chunk_end_tokens", "force_context_ids") and v is not None:
            v = tuple(v)
        out[k] = v
    return out
