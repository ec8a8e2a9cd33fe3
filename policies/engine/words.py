"""Vectorised subword -> word helpers shared by both modes.

llmlingua averages a word's subword probabilities with Python's ``sum(list) / len``
over float32 scalars: a strictly left-to-right float32 sum. ``np.add.reduceat``
uses pairwise summation on long segments, so it can differ in the last bit and
flip threshold ties; these helpers keep the sequential order while still working
on whole arrays.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np


@dataclass
class InferRequest:
    """Framed id sequences a mode needs probabilities for (answered via ``send``)."""

    seqs: list[np.ndarray]
    fixed_len: int | None  # pad every sequence to this length (reference parity)
    pad_id: int


ModeGen = Generator[InferRequest, list[np.ndarray], dict]


def segment_starts(begins: np.ndarray) -> np.ndarray:
    """Start index of each word given a boolean "token begins a word" array."""
    if begins.size == 0:
        return np.zeros(0, dtype=np.int64)
    b = begins.copy()
    b[0] = True
    return np.flatnonzero(b)


def sequential_sum(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-segment left-to-right float32 sums (bit-identical to Python's ``sum``)."""
    acc = np.zeros(len(starts), dtype=np.float32)
    if len(starts) == 0:
        return acc
    order = np.argsort(-lengths, kind="stable")
    sorted_len = lengths[order]
    neg = -sorted_len
    for k in range(int(sorted_len[0])):
        n_active = int(np.searchsorted(neg, -k, side="left"))  # words with length > k
        idx = order[:n_active]
        acc[idx] += values[starts[idx] + k]
    return acc


def sequential_mean(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``sum(list) / len(list)`` per segment, in float32 as under NumPy 2 promotion."""
    return (sequential_sum(values, starts, lengths) / lengths.astype(np.float32)).astype(np.float32)


def flat_sequential_sum(values: np.ndarray) -> np.float32:
    """Left-to-right float32 sum of one long array (``np.cumsum`` is sequential)."""
    if values.size == 0:
        return np.float32(0.0)
    return np.float32(np.cumsum(values.astype(np.float32), dtype=np.float32)[-1])
