"""ONNX Runtime session: provider choice, batching, padding and keep probabilities.

ORT silently falls back to CPU when the CUDA EP cannot load, and
``get_available_providers()`` lists CUDA on GPU-less machines, so the device is
decided by what a created session actually reports. ``InferenceSession.run``
is thread-safe and releases the GIL; IO binding objects are not, so each CUDA
run builds its own binding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from policies.bundle import Bundle

log = logging.getLogger("linguagate.engine")
_NVIDIA_DEVICES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")


def _make_session(path: str, providers: list[Any], threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # the CUDA fallback error is reported by us, once
    if threads > 0:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, sess_options=opts, providers=providers)


class OrtRunner:
    """Runs the token classifier over batches of id sequences; returns keep probabilities."""

    def __init__(
        self, bundle: Bundle, device: str = "auto", variant: str | None = None, threads: int = 0
    ) -> None:
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
        self.keep_label = bundle.keep_label
        self.io_device = "cuda"  # where IO-bound runs leave the logits ("cpu" in tests)
        self.session: ort.InferenceSession | None = None
        self.device = "cpu"
        if device in ("auto", "cuda"):
            self._try_cuda(bundle, variant, device == "cuda")
        if self.session is None:
            name = bundle.pick_variant("cpu", variant)
            self.variant = name
            self.session = _make_session(
                str(bundle.variants[name]), ["CPUExecutionProvider"], threads
            )
            log.info("engine: CPU execution provider, variant %s", name)
        self.input_names = {i.name for i in self.session.get_inputs()}

    def _try_cuda(self, bundle: Bundle, variant: str | None, required: bool) -> None:
        if not required and not any(os.path.exists(d) for d in _NVIDIA_DEVICES):
            return  # no driver: skip the noisy failed CUDA load on CPU-only hosts
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            if required:
                raise RuntimeError("device=cuda but this onnxruntime has no CUDA provider")
            return
        if (variant or "int8") == "int8" and not {"fp16", "fp32"} & set(bundle.variants):
            # int8 dynamic quantisation is a CPU format: on the CUDA EP it would fall back
            # op by op. A small int8-only bundle (the shipped default) runs on the CPU.
            (log.warning if required else log.info)(
                "engine: bundle %s has only an int8 (CPU) variant; running it on the CPU "
                "provider although CUDA was %s",
                bundle.path,
                "requested" if required else "available",
            )
            return
        name = bundle.pick_variant("cuda", variant)
        providers: list[Any] = [
            ("CUDAExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}),
            "CPUExecutionProvider",
        ]
        try:
            if hasattr(ort, "preload_dlls"):
                ort.preload_dlls()
            sess = _make_session(str(bundle.variants[name]), providers, threads=1)
        except Exception as exc:  # a broken CUDA install must not stop a CPU start
            if required:
                raise RuntimeError(f"cannot create a CUDA session: {exc}") from exc
            log.info("engine: CUDA session failed (%s); using CPU", exc)
            return
        if "CUDAExecutionProvider" not in sess.get_providers():
            if required:
                raise RuntimeError("device=cuda but ORT fell back to CPU (CUDA/cuDNN missing?)")
            log.info("engine: CUDA provider unavailable at run time; using CPU")
            return
        self.session, self.device, self.variant = sess, "cuda", name
        log.info("engine: CUDA execution provider, variant %s", name)
        # One full-size run so the CUDA arena and kernels are ready before the first request.
        ids = np.zeros((1, bundle.max_seq_len), dtype=np.int64)
        self._run_cuda(ids, np.ones_like(ids))

    # ------------------------------------------------------------------------------
    def probs(
        self,
        seqs: Sequence[np.ndarray],
        *,
        fixed_len: int | None = None,
        pad_id: int = 0,
        max_batch_tokens: int = 16384,
    ) -> list[np.ndarray]:
        """Keep probability (float32) for every position of every framed id sequence.

        ``fixed_len`` pads every sequence to that length (llmlingua pads to 512, and
        reference parity needs identical numerics); otherwise sequences are sorted
        by length and each batch is padded only to its longest member.
        """
        out: list[np.ndarray | None] = [None] * len(seqs)
        if not seqs:
            return []
        lengths = np.array([len(s) for s in seqs])
        order = np.arange(len(seqs)) if fixed_len else np.argsort(-lengths, kind="stable")
        i = 0
        while i < len(order):
            width = int(fixed_len or lengths[order[i]])
            per_batch = max(1, max_batch_tokens // max(width, 1))
            idx = order[i : i + per_batch]
            i += per_batch
            ids = np.full((len(idx), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, k in enumerate(idx):
                n = int(lengths[k])
                ids[row, :n] = seqs[k]
                mask[row, :n] = 1
            p = self._run(ids, mask)
            for row, k in enumerate(idx):
                out[k] = p[row, : int(lengths[k])]
        return [o if o is not None else np.zeros(0, np.float32) for o in out]

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        assert self.session is not None
        if self.device == "cuda":
            logits = self._run_cuda(ids, mask)
        else:
            feeds = {"input_ids": ids, "attention_mask": mask}
            logits = self.session.run(["logits"], feeds)[0]
        return softmax_keep(np.asarray(logits, dtype=np.float32), self.keep_label)

    def _run_cuda(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """IO-bound CUDA run: inputs copied once, logits allocated on the device."""
        assert self.session is not None
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_output("logits", self.io_device)
        self.session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0])


def softmax_keep(logits: np.ndarray, keep: int) -> np.ndarray:
    """``softmax(logits)[..., keep]`` in float32, like torch's ``F.softmax`` then indexing."""
    m = logits.max(axis=-1, keepdims=True)
    e = np.exp(logits - m, dtype=np.float32)
    return (e[..., keep] / e.sum(axis=-1)).astype(np.float32)
