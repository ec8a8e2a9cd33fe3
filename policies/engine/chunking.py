"""Model-window planning for faithful mode: cut at sentence ends, else at word starts.

llmlingua cuts at a "." or "\\n" token if one exists in the window and otherwise
anywhere, even inside a word. Here a cut always falls on a word start; it is
moved back to the last sentence end when that keeps at least half a window.
Only a single word longer than the whole window is split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from policies.engine.layout import Layout

_SENTENCE_END = (".", "!", "?", "。", "！", "？", ";", "；", ":")


def plan_chunks(lay: Layout, limit: int, end_tokens: Sequence[str]) -> list[tuple[int, int]]:
    """``[start, end)`` token ranges of at most ``limit`` tokens covering the text."""
    n = len(lay.ids)
    if n == 0:
        return []
    starts = lay.word_tok_start
    breaks = _sentence_breaks(lay, end_tokens)
    out: list[tuple[int, int]] = []
    st = 0
    while n - st > limit:
        hi = st + limit
        lo_w = int(np.searchsorted(starts, st, side="right"))
        hi_w = int(np.searchsorted(starts, hi, side="right"))  # word starts in (st, hi]
        cut = hi
        if hi_w > lo_w:
            cand = np.flatnonzero(breaks[lo_w:hi_w])
            if cand.size and starts[lo_w + cand[-1]] - st >= limit // 2:
                cut = int(starts[lo_w + cand[-1]])
            else:
                cut = int(starts[hi_w - 1])
        out.append((st, cut))
        st = cut
    out.append((st, n))
    return out


def _sentence_breaks(lay: Layout, end_tokens: Sequence[str]) -> np.ndarray:
    """Per word: does a sentence (or line, or chunk-end token) end right before it?"""
    text = lay.text
    ends = tuple(t for t in end_tokens if t.strip()) + _SENTENCE_END
    ws, we = lay.word_start.tolist(), lay.word_end.tolist()
    out = np.zeros(lay.n_words, dtype=bool)
    for w in range(1, lay.n_words):
        prev_word = text[ws[w - 1] : we[w - 1]]
        if prev_word.endswith(ends) or "\n" in text[we[w - 1] : ws[w]]:  # line ends always count
            out[w] = True
    return out
