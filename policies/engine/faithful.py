"""``faithful`` mode: drop low-value words, keep every kept character exactly as written.

Differences from llmlingua (on purpose): words are located by tokenizer offsets in
the original string, so kept words keep their case, Unicode, and any
out-of-vocabulary characters; the model sees the family's real special tokens;
chunks end at sentence or word boundaries; and one token budget is shared by all
chunks and contexts. Ranking uses probabilities rounded to 1e-4 with position as
tie-break so results do not depend on how requests were batched together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.engine.chunking import plan_chunks
from policies.engine.layout import Layout, assemble, layout_words, piece_tables
from policies.engine.reference import RefOptions, _context_rate, result_dict
from policies.engine.tokenization import EngineTokenizer
from policies.engine.words import InferRequest, ModeGen
from policies.tokens import count_tokens, get_encoding

_DIGIT = re.compile(r"\d")
_MAX_ADJUST = 8


@dataclass
class FaithfulOptions(RefOptions):
    """The reference options plus what only faithful mode understands."""

    protected_spans: list[list[tuple[int, int]]] | None = None
    encoding: str | None = None


class FaithfulMode:
    def __init__(self, tk: EngineTokenizer, max_seq_len: int = 512) -> None:
        self.tk = tk
        self.max_seq_len = max_seq_len
        piece_tables(tk)  # build the per-vocabulary tables now, not on the first request

    def run(self, contexts: list[str], opt: FaithfulOptions) -> ModeGen:
        if opt.token_to_word not in ("mean", "first"):
            raise NotImplementedError(f"token_to_word={opt.token_to_word!r}")
        if opt.protected_spans is not None and len(opt.protected_spans) != len(contexts):
            raise ValueError("protected_spans needs one span list per context")
        enc = get_encoding(opt.encoding or "cl100k_base")
        n_ctx = [count_tokens(c, enc) for c in contexts]
        n_orig = sum(n_ctx)
        use_filter = opt.use_context_level_filter and len(contexts) > 1
        budget = float(opt.target_token) if opt.target_token > 0 else opt.rate * n_orig
        if not opt.use_token_level_filter:
            budget = float(n_orig)
        if not use_filter and budget >= n_orig:
            return _finish(contexts, list(contexts), [], n_orig, n_ctx, opt, keep_all=True)

        layouts = [layout_words(self.tk, text) for text in contexts]
        seqs, owners = [], []
        for ci, lay in enumerate(layouts):
            for a, b in plan_chunks(lay, self.max_seq_len - 2, opt.chunk_end_tokens):
                seqs.append(np.concatenate(([self.tk.cls_id], lay.ids[a:b], [self.tk.sep_id])))
                owners.append((ci, a, b))
        probs: list[np.ndarray] = []
        if seqs:
            probs = yield InferRequest(seqs, None, self.tk.pad_id)
        for lay in layouts:
            lay.token_probs = np.zeros(len(lay.ids), dtype=np.float32)
        for (ci, a, b), p in zip(owners, probs, strict=True):
            layouts[ci].token_probs[a:b] = p[1:-1]
        for ci, lay in enumerate(layouts):
            spans = opt.protected_spans[ci] if opt.protected_spans else []
            _score_words(lay, opt, spans)

        keep_ctx = list(range(len(contexts)))
        if use_filter:
            scores = [float(lay.word_probs.mean()) if lay.n_words else 0.0 for lay in layouts]
            clr = _context_rate(opt, opt.rate, n_orig, len(contexts))  # type: ignore[arg-type]
            thr = np.percentile(np.array(scores), int(100 * (1 - clr)))
            forced_ids = set(opt.force_context_ids)
            keep_ctx = [i for i, s in enumerate(scores) if s >= thr or i in forced_ids]
        kept_layouts = [layouts[i] for i in keep_ctx]
        for lay in kept_layouts:
            lay.costs = _word_costs(lay, enc)
        masks = _select(kept_layouts, budget, enc, opt)
        outputs = [assemble(lay, m) for lay, m in zip(kept_layouts, masks, strict=True)]
        labels: list[np.ndarray] = []
        j = 0
        for i, lay in enumerate(layouts):
            if j < len(keep_ctx) and keep_ctx[j] == i:
                labels.append(masks[j])
                j += 1
            else:
                labels.append(np.zeros(lay.n_words, dtype=bool))
        res = _finish(
            contexts, outputs, list(zip(layouts, labels, strict=True)), n_orig, n_ctx, opt
        )
        if use_filter:
            res["kept_context_ids"] = keep_ctx  # which inputs the context filter kept
        return res


def _score_words(lay: Layout, opt: FaithfulOptions, spans: list[tuple[int, int]]) -> None:
    """Word probabilities and the forced-word mask of one context."""
    p = lay.token_probs
    if lay.n_words == 0:
        lay.word_probs = np.zeros(0)
        lay.forced = np.zeros(0, dtype=bool)
        return
    if opt.token_to_word == "mean":
        wp = np.add.reduceat(p.astype(np.float64), lay.word_tok_start) / lay.word_tok_len
    else:
        wp = p[lay.word_tok_start].astype(np.float64)
    lay.word_probs = wp
    all_spans = list(spans)
    for f in opt.force_tokens:
        if f and f.strip():
            pos = lay.text.find(f)
            while pos >= 0:
                all_spans.append((pos, pos + len(f)))
                pos = lay.text.find(f, pos + 1)
    forced = _overlaps(lay.word_start, lay.word_end, all_spans)
    if opt.force_reserve_digit:
        forced |= np.array([bool(_DIGIT.search(w)) for w in lay.words()], dtype=bool)
    lay.forced = forced


def _overlaps(starts: np.ndarray, ends: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Which [start, end) words intersect any of ``spans``."""
    if not spans:
        return np.zeros(len(starts), dtype=bool)
    merged: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in spans if b > a):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    if not merged:
        return np.zeros(len(starts), dtype=bool)
    sa = np.array([m[0] for m in merged])
    sb = np.array([m[1] for m in merged])
    idx = np.searchsorted(sa, ends, side="left") - 1
    ok = idx >= 0
    out = np.zeros(len(starts), dtype=bool)
    out[ok] = sb[idx[ok]] > starts[ok]
    return out


def _word_costs(lay: Layout, enc: Any) -> np.ndarray:
    """Tokens of the target encoding per word (a word owns the whitespace before it)."""
    if lay.n_words == 0:
        return np.zeros(0, dtype=np.int64)
    toks = enc.encode(lay.text, disallowed_special=())
    _, offs = enc.decode_with_offsets(toks)
    owner = np.searchsorted(lay.word_end, np.asarray(offs, dtype=np.int64), side="right")
    owner = np.clip(owner, 0, lay.n_words - 1)
    return np.bincount(owner, minlength=lay.n_words).astype(np.int64)


def _select(lays: list[Layout], budget: float, enc: Any, opt: FaithfulOptions) -> list[np.ndarray]:
    """Global selection: forced words, then best-ranked words until the budget is met."""
    if not lays:
        return []
    sizes = [lay.n_words for lay in lays]
    prob = np.concatenate([lay.word_probs for lay in lays]) if sum(sizes) else np.zeros(0)
    forced = np.concatenate([lay.forced for lay in lays]) if sum(sizes) else np.zeros(0, bool)
    cost = np.concatenate([lay.costs for lay in lays]) if sum(sizes) else np.zeros(0, np.int64)
    if opt.drop_consecutive and opt.force_tokens:
        _drop_repeats(lays, forced, set(opt.force_tokens))
    free = np.flatnonzero(~forced)
    key = np.round(prob[free], 4)
    order = free[np.lexsort((free, -key))]
    cum = np.cumsum(cost[order])
    remaining = budget - float(cost[forced].sum())

    def masks_for(k: int) -> list[np.ndarray]:
        keep = forced.copy()
        keep[order[:k]] = True
        return np.split(keep, np.cumsum(sizes)[:-1])

    def measure(k: int) -> int:
        return sum(
            count_tokens(assemble(lay, m), enc) for lay, m in zip(lays, masks_for(k), strict=True)
        )

    k = int(np.searchsorted(cum, remaining, side="right")) if remaining > 0 else 0
    best_k, best_err = k, None
    tried: set[int] = set()
    for _ in range(_MAX_ADJUST):
        if k in tried:
            break
        tried.add(k)
        achieved = measure(k)
        err = achieved - budget
        if best_err is None or abs(err) < abs(best_err):
            best_k, best_err = k, err
        if abs(err) <= max(0.005 * budget, 0.5) or remaining <= 0:
            break
        base = float(cum[k - 1]) if k > 0 else 0.0
        k = int(np.searchsorted(cum, base - err, side="right"))
        k = max(0, min(k, len(order)))
    return masks_for(best_k)


def _drop_repeats(lays: list[Layout], forced: np.ndarray, force: set[str]) -> None:
    """Unforce a force-token word repeating the previous one with only droppable words between."""
    offset = 0
    for lay in lays:
        prev: str | None = None
        for w, text in enumerate(lay.words()):
            g = offset + w
            if text in force:
                if text == prev:
                    forced[g] = False
                prev = text
            elif forced[g]:
                prev = None
        offset += lay.n_words


def _finish(
    contexts: list[str],
    outputs: list[str],
    labelled: list[tuple[Layout, np.ndarray]],
    n_orig: int,
    n_ctx: list[int],
    opt: FaithfulOptions,
    keep_all: bool = False,
) -> dict[str, Any]:
    enc = get_encoding(opt.encoding or "cl100k_base")
    n_comp = sum(n_ctx) if keep_all else sum(count_tokens(o, enc) for o in outputs)
    labels = None
    if opt.return_word_label:
        pairs: list[str] = []
        if keep_all:
            for text in contexts:
                pairs.extend(f"{w}{opt.label_sep}1" for w in text.split())
        for lay, mask in labelled:
            pairs.extend(
                f"{w}{opt.label_sep}{int(k)}"
                for w, k in zip(lay.words(), mask.tolist(), strict=True)
            )
        labels = opt.word_sep.join(pairs)
    return result_dict(outputs, n_orig, n_comp, labels)
