"""Deterministic train/dev split by record, stratified by genre.

Splitting by record (never by chunk) keeps every sentence of a dev text unseen in
training; stratifying by genre keeps rare genres (forum, finance) in both parts.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

DEV_FRACTION = 0.2
SEED = 13


def split_ids(
    items: Iterable[tuple[str, str]], dev_fraction: float = DEV_FRACTION, seed: int = SEED
) -> tuple[list[str], list[str]]:
    """(id, genre) pairs -> (train ids, dev ids); same input and seed, same split.

    Each genre sends ``ceil(n * dev_fraction)`` records to dev (at least one when it
    has two or more), so dev is never below ``dev_fraction`` overall.
    """
    by_genre: dict[str, list[str]] = defaultdict(list)
    for rid, genre in items:
        by_genre[genre].append(rid)
    train: list[str] = []
    dev: list[str] = []
    for genre in sorted(by_genre):
        ids = sorted(by_genre[genre])
        random.Random(f"{seed}:{genre}").shuffle(ids)
        n_dev = math.ceil(len(ids) * dev_fraction) if len(ids) > 1 else 0
        dev.extend(ids[:n_dev])
        train.extend(ids[n_dev:])
    return sorted(train), sorted(dev)


def write_split(
    path: Path, train: list[str], dev: list[str], seed: int, dev_fraction: float
) -> None:
    """Record the split beside the run so that the bench evaluates the same dev set."""
    payload = {"seed": seed, "dev_fraction": dev_fraction, "train": train, "dev": dev}
    Path(path).write_text(json.dumps(payload, indent=1) + "\n")


def read_split(path: Path) -> tuple[list[str], list[str]]:
    data = json.loads(Path(path).read_text())
    return list(data["train"]), list(data["dev"])
