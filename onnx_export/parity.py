"""Parity of each ONNX variant against the PyTorch model it came from.

What matters for compression is the keep decision (P(keep) > 0.5) per token, so
besides the largest logit difference we report how often the variant agrees with
PyTorch on it. Samples are generated text of several lengths, from a few words up
to a full ``max_seq_len`` window, run both padded in one batch and alone, so the
dynamic batch and sequence axes and the right-padding mask are all exercised.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

# Minimum keep-decision agreement with PyTorch per variant (tests lower/raise these).
MIN_AGREEMENT = {"fp32": 1.0, "fp16": 0.99, "int8": 0.99}
SAMPLE_WORDS = [50, 150, 400, 2000]  # words per sample; the last fills the window
GROUPS = ("batch", "single")
NOT_CHECKED_FP16 = "not checked (needs CUDA)"

_TEXT = (
    "the meeting council budget approved motion public hearing item agenda vote second "
    "resolution city street park water million dollars percent January report staff "
    "Zusammenfassung Straße über Gemeinderat élection conseil budget été año presupuesto "
    "会议 预算 市议会 公园 会議 予算 회의 예산 Москва бюджет совет 2024 17.5 42 "
    "e-mail https://example.org/a?b=1 O'Brien don't (see) [note] #12 $3,000 — ; : ! ?"
)
_WORDS = _TEXT.split(" ")


def sample_texts(seed: int = 0) -> list[str]:
    """Deterministic multilingual pseudo-text; the random model makes content irrelevant."""
    rng = random.Random(seed)
    texts = []
    for n_words in SAMPLE_WORDS:
        words = [rng.choice(_WORDS) for _ in range(n_words)]
        for i in range(12, n_words, 13):
            words[i] += "."
        texts.append(" ".join(words))
    return texts


def encode_samples(tokenizer_path: Path, max_seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """Token ids and masks for each group, with the bundle's own tokenizer."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_padding()
    tok.enable_truncation(max_length=max_seq_len)
    encodings = [enc.ids for enc in tok.encode_batch(sample_texts())]
    width = max(len(ids) for ids in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(encodings):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    longest = int(np.argmax(mask.sum(axis=1)))
    return {
        "batch_ids": ids,
        "batch_mask": mask,
        "single_ids": ids[longest : longest + 1, : int(mask[longest].sum())],
        "single_mask": mask[longest : longest + 1, : int(mask[longest].sum())],
    }


def keep_decisions(logits: np.ndarray, keep_label: int) -> np.ndarray:
    """P(keep) > 0.5 per token, computed as the engine does (softmax over labels)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.asarray(probs[..., keep_label] > 0.5)


def compare(
    reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray], keep_label: int
) -> dict[str, Any]:
    """Max |logit diff| and keep agreement over the unpadded positions of all groups."""
    max_diff, agree, total = 0.0, 0, 0
    for group in GROUPS:
        valid = reference[f"{group}_mask"].astype(bool)
        ref = reference[f"{group}_logits"][valid]
        got = outputs[group][valid].astype(np.float64)
        if not np.all(np.isfinite(got)):
            max_diff = float("inf")
        else:
            max_diff = max(max_diff, float(np.abs(got - ref).max()))
        agree += int((keep_decisions(ref, keep_label) == keep_decisions(got, keep_label)).sum())
        total += int(valid.sum())
    return {"max_abs_logit_diff": max_diff, "keep_agreement": agree / total, "tokens": total}


def run_onnx(onnx_path: Path, reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Logits from ONNX Runtime's CPU EP for every sample group."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return {
        group: session.run(
            ["logits"],
            {
                "input_ids": reference[f"{group}_ids"],
                "attention_mask": reference[f"{group}_mask"],
            },
        )[0]
        for group in GROUPS
    }


def check_variant(
    onnx_path: str, reference_path: str, variant: str, keep_label: int, min_agreement: float
) -> dict[str, Any]:
    """Parity result for one variant; fp16 that the CPU EP cannot run is reported as such."""
    with np.load(reference_path) as data:
        reference = {key: data[key] for key in data.files}
    try:
        outputs = run_onnx(Path(onnx_path), reference)
    except Exception as exc:  # ORT raises its own pybind types (NotImplemented, Fail)
        if variant != "fp16":
            raise
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"status": NOT_CHECKED_FP16, "passed": None, "cpu_error": first_line[:300]}
    result = compare(reference, outputs, keep_label)
    result["min_agreement"] = min_agreement
    result["passed"] = result["keep_agreement"] >= min_agreement
    result["status"] = "passed" if result["passed"] else "failed"
    return result


def summary_line(variant: str, result: dict[str, Any]) -> str:
    """One human line per variant for progress output and error messages."""
    if result.get("passed") is None:
        return f"{variant}: {result['status']}"
    return (
        f"{variant}: keep agreement {result['keep_agreement']:.2%} "
        f"(min {result['min_agreement']:.0%}), max |logit diff| "
        f"{result['max_abs_logit_diff']:.2e} over {result['tokens']} tokens"
    )


if __name__ == "__main__":
    from onnx_export.steps import step_main

    sys.exit(step_main(check_variant))
