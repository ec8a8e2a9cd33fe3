"""Labelled records -> model inputs: engine-style chunks with subword labels.

Chunks are cut like the engine cuts them (at most ``max_len - 2`` tokens, ending at a
sentence end when one is in reach) so the model trains on the inputs it will see.
Every subword of a piece gets the piece's label (not first-subword-only): the engine
scores a word by the *mean* of its subword probabilities (``token_to_word="mean"``),
so every subword's output matters at inference and should be trained. [CLS]/[SEP]
get -100 (ignored by the loss).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from onnx_export.train.labels import Labelled

IGNORE = -100
CHUNK_END = frozenset({".", "!", "?"})


@dataclass(frozen=True)
class Chunk:
    """One model input: ids with [CLS]/[SEP], labels aligned to them."""

    record_id: str
    input_ids: list[int]
    labels: list[int]


def load_tokenizer(path: Path) -> Tokenizer:
    """The fast tokenizer with the padding/truncation some tokenizer.json files carry removed."""
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok


def chunk_bounds(
    tokens: Sequence[str], ends_line: Sequence[bool], budget: int
) -> list[tuple[int, int]]:
    """[start, end) token ranges of at most ``budget`` tokens, cut after a sentence end.

    As the engine: scan back from the budget for the last "." (or line end, which BERT's
    tokenizer erases but the text has); cut hard when there is none.
    """
    out: list[tuple[int, int]] = []
    st, n = 0, len(tokens)
    while st < n:
        if n - st <= budget:
            out.append((st, n))
            break
        ed = st + budget  # exclusive
        cut = -1
        for p in range(ed - 1, st, -1):
            if tokens[p] in CHUNK_END or ends_line[p]:
                cut = p + 1
                break
        ed = cut if cut > 0 else ed
        out.append((st, ed))
        st = ed
    return out


def record_chunks(rec: Labelled, tok: Tokenizer, max_len: int = 512) -> list[Chunk]:
    """Tokenise one labelled record and cut it into labelled chunks."""
    char_keep = np.full(len(rec.text), -1, dtype=np.int8)
    for piece in rec.pieces:
        char_keep[piece.start : piece.end] = 1 if piece.keep else 0
    enc = tok.encode(rec.text, add_special_tokens=False)
    labels: list[int] = []
    ends_line: list[bool] = []
    for i, (s, e) in enumerate(enc.offsets):
        span = char_keep[s:e]
        labels.append(int(span.max()) if span.size and span.max() >= 0 else 0)
        nxt = enc.offsets[i + 1][0] if i + 1 < len(enc.offsets) else len(rec.text)
        ends_line.append("\n" in rec.text[e:nxt])
    cls_id = _special(tok, "[CLS]")
    sep_id = _special(tok, "[SEP]")
    chunks = []
    for st, ed in chunk_bounds(enc.tokens, ends_line, max_len - 2):
        chunks.append(
            Chunk(
                record_id=rec.id,
                input_ids=[cls_id, *enc.ids[st:ed], sep_id],
                labels=[IGNORE, *labels[st:ed], IGNORE],
            )
        )
    return chunks


def _special(tok: Tokenizer, token: str) -> int:
    found = tok.token_to_id(token)
    if found is None:
        raise ValueError(f"tokenizer has no {token} token (not a BERT WordPiece tokenizer?)")
    return int(found)


def build_chunks(records: Iterable[Labelled], tok: Tokenizer, max_len: int = 512) -> list[Chunk]:
    return [c for rec in records for c in record_chunks(rec, tok, max_len)]


def collate(chunks: Sequence[Chunk], pad_id: int = 0) -> dict[str, np.ndarray]:
    """Right-pad a batch to its longest chunk (not to 512: most chunks are shorter)."""
    width = max(len(c.input_ids) for c in chunks)
    ids = np.full((len(chunks), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(chunks), width), dtype=np.int64)
    labels = np.full((len(chunks), width), IGNORE, dtype=np.int64)
    for i, c in enumerate(chunks):
        n = len(c.input_ids)
        ids[i, :n] = c.input_ids
        mask[i, :n] = 1
        labels[i, :n] = c.labels
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
