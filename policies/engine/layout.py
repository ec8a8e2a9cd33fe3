"""Words of the original text (from tokenizer offsets) and output assembly for faithful mode.

A word is a run of tokens the model scores together: a new word starts at
whitespace, at a pre-tokenizer boundary, at punctuation (XLM-R's pre-tokenizer
keeps "word," together; llmlingua splits it) and at every CJK piece, since
those scripts do not separate words by spaces. Output is rebuilt from original
character spans, so nothing is normalised, lost to <unk>, or glued.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np

from policies.engine.tokenization import EngineTokenizer

_EMPTY_I = np.zeros(0, dtype=np.int64)


@dataclass
class Layout:
    text: str
    ids: np.ndarray  # token ids (no specials)
    word_tok_start: np.ndarray  # first token of each word
    word_tok_len: np.ndarray
    word_start: np.ndarray  # char span of each word in ``text``
    word_end: np.ndarray
    token_probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    word_probs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    forced: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    costs: np.ndarray = field(default_factory=lambda: _EMPTY_I)

    @property
    def n_words(self) -> int:
        return len(self.word_start)

    def words(self) -> list[str]:
        t = self.text
        return [
            t[a:b] for a, b in zip(self.word_start.tolist(), self.word_end.tolist(), strict=True)
        ]

    def gap_before(self, w: int) -> str:
        a = int(self.word_end[w - 1]) if w > 0 else 0
        return self.text[a : int(self.word_start[w])]


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F") and ch.isalpha()


def piece_tables(tk: EngineTokenizer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cached = getattr(tk, "_faithful_tables", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    punct, cjk, bare = [], [], []
    for s in tk.pure:
        punct.append(bool(s) and all(unicodedata.category(c)[0] in "PS" for c in s))
        cjk.append(any(_is_cjk(c) for c in s))
        bare.append(s == "")
    tables = (np.array(punct), np.array(cjk), np.array(bare))
    tk._faithful_tables = tables  # type: ignore[attr-defined]
    return tables


def layout_words(tk: EngineTokenizer, text: str) -> Layout:
    """Tokenise ``text`` with offsets and group tokens into words."""
    enc = tk.tok.encode(text, add_special_tokens=False)
    ids = np.asarray(enc.ids, dtype=np.int64)
    if ids.size == 0:
        return Layout(text, ids, _EMPTY_I, _EMPTY_I, _EMPTY_I, _EMPTY_I)
    offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
    starts, ends = offs[:, 0], offs[:, 1]
    wid = np.array([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
    punct, cjk, bare = piece_tables(tk)
    p, c, b = punct[ids], cjk[ids], bare[ids]
    new = np.ones(len(ids), dtype=bool)
    prev_end = np.maximum.accumulate(ends)[:-1]
    new[1:] = (
        (wid[1:] != wid[:-1])
        | (wid[1:] < 0)
        | (starts[1:] > prev_end)
        | p[1:]
        | p[:-1]
        | c[1:]
        | c[:-1]
    )
    new[1:] &= ~b[:-1]  # a bare "▁" piece belongs to the token after it
    tok_start = np.flatnonzero(new)
    tok_len = np.diff(np.append(tok_start, len(ids)))
    w_start = starts[tok_start]
    w_end = np.maximum.reduceat(ends, tok_start)
    # Zero-width words (no characters) can only come from odd pieces; fold them away.
    return Layout(text, ids, tok_start, tok_len, w_start, np.maximum(w_end, w_start))


def _joinable(a: str, b: str) -> bool:
    """Whether two words that touched nothing in between need a space once glued."""
    return (
        bool(a and b)
        and a[-1].isalnum()
        and b[0].isalnum()
        and not (_is_cjk(a[-1]) or _is_cjk(b[0]))
    )


def assemble(lay: Layout, keep: np.ndarray) -> str:
    """Kept words with original spacing; dropped stretches collapse to one separator.

    Adjacent kept words keep the exact original gap (indentation, tabs, newlines).
    Across dropped words: up to two of the newlines that were there plus the next
    line's indentation, else a single space, else nothing (CJK, punctuation).
    """
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        return ""
    text = lay.text
    ws, we = lay.word_start.tolist(), lay.word_end.tolist()
    nl_cum, ws_cum = _gap_tables(lay)
    out: list[str] = []
    prev = -1
    for w in kept.tolist():
        gap = text[we[w - 1] if w > 0 else 0 : ws[w]]
        if prev < 0:
            if w == 0:
                out.append(gap)
            elif "\n" in gap:
                out.append(gap[gap.rfind("\n") + 1 :])
        elif prev == w - 1:
            out.append(gap)
        else:
            nl = int(nl_cum[w + 1] - nl_cum[prev + 1])
            if nl:
                indent = gap[gap.rfind("\n") + 1 :] if "\n" in gap else ""
                out.append("\n" * min(nl, 2) + indent)
            elif not gap and _closes(text[ws[w] : we[w]]):
                pass  # "approved yet." minus "yet" is "approved.", not "approved ."
            elif ws_cum[w + 1] - ws_cum[prev + 1] or _joinable(
                text[ws[prev] : we[prev]], text[ws[w] : we[w]]
            ):
                out.append(" ")
        out.append(text[ws[w] : we[w]])
        prev = w
    if prev == lay.n_words - 1:
        out.append(text[we[prev] :])
    return "".join(out)


_CLOSING = frozenset(".,;:!?)]}%…»”’")


def _closes(word: str) -> bool:
    """Punctuation that belongs to the text before it (so it never starts with a space)."""
    return bool(word) and all(ch in _CLOSING for ch in word)


def _gap_tables(lay: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums of newlines / non-empty gaps before each word (cached on the layout)."""
    cached = getattr(lay, "_gap_tables", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    text = lay.text
    ws, we = lay.word_start.tolist(), lay.word_end.tolist()
    prev_end = [0, *we[:-1]]
    nl = [text.count("\n", a, b) for a, b in zip(prev_end, ws, strict=True)]
    has_ws = [b > a for a, b in zip(prev_end, ws, strict=True)]
    tables = (
        np.concatenate(([0], np.cumsum(nl, dtype=np.int64))),
        np.concatenate(([0], np.cumsum(has_ws, dtype=np.int64))),
    )
    lay._gap_tables = tables  # type: ignore[attr-defined]
    return tables
