"""Word keep/drop labels from teacher compressions (LLMLingua-2 data distillation).

The teacher only deletes words, so each compressed word is matched, in order, to an
original word; matched originals are "keep", the rest "drop" (as ``label_word.py`` in
LLMLingua-2). Matching compares normalised forms (lower case, punctuation stripped)
because the teacher may drop punctuation glued to a word ("Tuesday," -> "Tuesday").
Labels are then refined to pieces (``\\w+`` runs and single punctuation characters,
close to BERT's pre-tokenizer) so a dropped comma is a dropped piece.

Records whose compression is not a clean deletion (words the original lacks, or words
the greedy alignment could not place) are filtered out with a reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PIECE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
WORD = re.compile(r"\S+")
PUNCT = re.compile(r"[^\w]+", re.UNICODE)

DEFAULT_WINDOW = 300  # original pieces searched ahead of the cursor per compressed word
MAX_VARIATION = 0.05  # share of compressed words absent from the original
MAX_GAP = 0.05  # share of compressed words present in the original but not aligned


@dataclass(frozen=True)
class Piece:
    """A labelled span of the original text (a word run or one punctuation mark)."""

    start: int
    end: int
    keep: bool


@dataclass
class Labelled:
    """One record with its word-level alignment and piece labels."""

    id: str
    genre: str
    text: str
    words: list[tuple[int, int]]  # whitespace words of the original (char spans)
    word_keep: list[bool]
    pieces: list[Piece]
    qa: list[dict[str, str]] = field(default_factory=list)
    n_comp: int = 0  # compressed words
    n_matched: int = 0  # compressed words aligned to an original word
    n_hit: int = 0  # compressed words whose form occurs anywhere in the original

    @property
    def variation_rate(self) -> float:
        """Compressed words not found in the original at all (the teacher invented them)."""
        return (self.n_comp - self.n_hit) / max(1, self.n_comp)

    @property
    def alignment_gap(self) -> float:
        """Hit rate minus match rate: words that exist but could not be placed in order."""
        return (self.n_hit - self.n_matched) / max(1, self.n_comp)

    @property
    def keep_ratio(self) -> float:
        return sum(self.word_keep) / max(1, len(self.word_keep))


def norm(word: str) -> str:
    """Normalised word form: lower case with punctuation removed (may be empty)."""
    return PUNCT.sub("", word.lower())


def _is_content(piece: str) -> bool:
    return PUNCT.fullmatch(piece) is None


def align_words(
    original: list[str], compressed: list[str], window: int = DEFAULT_WINDOW
) -> list[int]:
    """Greedy in-order alignment: for each compressed word the original index, or -1.

    Words compare by :func:`norm` (pure punctuation by itself). Each compressed word is
    searched from the cursor up to ``window`` words ahead; a miss leaves the cursor
    where it is so one stray word cannot derail the rest.
    """
    keys = [norm(w) or w for w in original]
    out: list[int] = []
    cursor = 0
    for word in compressed:
        key = norm(word) or word
        found = -1
        for j in range(cursor, min(len(keys), cursor + window)):
            if keys[j] == key:
                found = j
                break
        out.append(found)
        if found >= 0:
            cursor = found + 1
    return out


def _align_punct(opieces: list[str], cpieces: list[str], cmatch: list[int]) -> set[int]:
    """Original punctuation kept: each compressed mark is placed between its aligned
    neighbours, so a kept comma is the comma next to the kept words, not an earlier one."""
    n = len(opieces)
    nxt = [n] * (len(cpieces) + 1)
    for ci in range(len(cpieces) - 1, -1, -1):
        nxt[ci] = cmatch[ci] if cmatch[ci] >= 0 and _is_content(cpieces[ci]) else nxt[ci + 1]
    kept: set[int] = set()
    lo = -1
    for ci, piece in enumerate(cpieces):
        if _is_content(piece):
            if cmatch[ci] >= 0:
                lo = cmatch[ci]
            continue
        for j in range(lo + 1, nxt[ci]):
            if opieces[j] == piece and j not in kept:
                kept.add(j)
                lo = j
                break
    return kept


def label_record(record: dict[str, Any], window: int = DEFAULT_WINDOW) -> Labelled:
    """Align one teacher record and label every original piece and word.

    Alignment runs on pieces rather than whitespace words because in code-like text
    (JSON, logs) the teacher deletes parts of a whitespace word (``ISODate('x'),`` ->
    ``x,``); word runs are matched first, then punctuation between them.
    """
    text = record["text"]
    found = list(PIECE.finditer(text))
    opieces = [m.group().lower() for m in found]
    cpieces = PIECE.findall(str(record["compressed"]).lower())
    o_content = [i for i, p in enumerate(opieces) if _is_content(p)]
    c_content = [i for i, p in enumerate(cpieces) if _is_content(p)]
    cm = align_words([opieces[i] for i in o_content], [cpieces[i] for i in c_content], window)
    cmatch = [-1] * len(cpieces)
    keep = [False] * len(opieces)
    for k, ci in enumerate(c_content):
        if cm[k] >= 0:
            cmatch[ci] = o_content[cm[k]]
            keep[o_content[cm[k]]] = True
    for j in _align_punct(opieces, cpieces, cmatch):
        keep[j] = True
    present = set(opieces[i] for i in o_content)
    spans = [(m.start(), m.end()) for m in WORD.finditer(text)]
    pieces = [Piece(m.start(), m.end(), keep[i]) for i, m in enumerate(found)]
    word_keep = _word_keep(spans, pieces)
    return Labelled(
        id=str(record["id"]),
        genre=str(record["genre"]),
        text=text,
        words=spans,
        word_keep=word_keep,
        pieces=pieces,
        qa=list(record.get("qa") or []),
        n_comp=len(c_content),
        n_matched=sum(1 for m in cm if m >= 0),
        n_hit=sum(1 for i in c_content if cpieces[i] in present),
    )


def _word_keep(spans: list[tuple[int, int]], pieces: list[Piece]) -> list[bool]:
    """A whitespace word is kept when any of its pieces is."""
    out = [False] * len(spans)
    w = 0
    for piece in pieces:
        while w < len(spans) and spans[w][1] <= piece.start:
            w += 1
        if w < len(spans) and piece.keep:
            out[w] = True
    return out


def drop_reason(
    rec: Labelled, max_variation: float = MAX_VARIATION, max_gap: float = MAX_GAP
) -> str | None:
    """Why a labelled record is unfit for training, or None when it is fine."""
    if rec.n_comp == 0 or not rec.words:
        return "empty"
    if rec.variation_rate > max_variation:
        return "variation_rate"
    if rec.alignment_gap > max_gap:
        return "alignment_gap"
    return None


@dataclass
class LabelReport:
    """What labelling kept and dropped, for the progress output and the model card."""

    total: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) or "none"
        n_drop = self.total - self.kept
        return f"labelled {self.total} records, kept {self.kept}, dropped {n_drop} ({why})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "dropped_ids": list(self.dropped_ids),
        }


def read_records(data_dir: Path) -> Iterator[dict[str, Any]]:
    """Every record of every ``*.jsonl`` file in ``data_dir``, files in name order."""
    for path in sorted(Path(data_dir).glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def label_all(
    records: Iterable[dict[str, Any]],
    *,
    window: int = DEFAULT_WINDOW,
    max_variation: float = MAX_VARIATION,
    max_gap: float = MAX_GAP,
) -> tuple[list[Labelled], LabelReport]:
    """Label records and filter the unfit ones; the report says how many and why."""
    report = LabelReport()
    kept: list[Labelled] = []
    for record in records:
        report.total += 1
        rec = label_record(record, window)
        reason = drop_reason(rec, max_variation, max_gap)
        if reason is None:
            kept.append(rec)
        else:
            report.dropped[reason] += 1
            report.dropped_ids.append(rec.id)
    report.kept = len(kept)
    return kept, report
