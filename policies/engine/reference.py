"""``reference`` mode: llmlingua 0.2.2's ``compress_prompt_llmlingua2``, quirks included.

Same chunking over tokenizer-normalised text, the same (buggy) special-token
framing, 512-padding, per-chunk percentile thresholds, tiktoken cl100k weighting
and decoder joins, so outputs match the PyTorch reference for the same weights.
The Python loops of the original are replaced by id-table lookups and numpy.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tiktoken

from policies.engine.tokenization import PLACEHOLDERS, EngineTokenizer
from policies.engine.words import InferRequest, ModeGen, flat_sequential_sum, sequential_mean

_BYPASS_WORDS = re.compile(r'\b\w+\b|[<>=/!@#$%^&*()?":{}|\\`~;_+-]')
MAX_SEQ_LEN = 512


@dataclass
class RefOptions:
    rate: float = 0.5
    target_token: float = -1
    use_context_level_filter: bool = False
    use_token_level_filter: bool = True
    target_context: int = -1
    context_level_rate: float = 1.0
    context_level_target_token: float = -1
    force_context_ids: tuple[int, ...] = ()
    return_word_label: bool = False
    word_sep: str = "\t\t|\t\t"
    label_sep: str = " "
    token_to_word: str = "mean"
    force_tokens: tuple[str, ...] = ()
    force_reserve_digit: bool = False
    drop_consecutive: bool = False
    chunk_end_tokens: tuple[str, ...] = (".", "\n")


@dataclass
class _Chunk:
    words: list[str]
    probs: np.ndarray  # word probabilities (float32 values)
    py_float: np.ndarray  # bool: value is a Python float in llmlingua (forced)
    no_force: np.ndarray  # llmlingua's stale-first-subword probabilities, averaged


def result_dict(
    outputs: list[str], n_orig: int, n_comp: int, labels: str | None = None
) -> dict[str, Any]:
    """The result dictionary llmlingua returns (same formulas and strings)."""
    saving = (n_orig - n_comp) * 0.06 / 1000
    ratio = 1 if n_comp == 0 else n_orig / n_comp
    res: dict[str, Any] = {
        "compressed_prompt": "\n\n".join(outputs),
        "compressed_prompt_list": outputs,
        "origin_tokens": n_orig,
        "compressed_tokens": n_comp,
        "ratio": f"{ratio:.1f}x",
        "rate": f"{1 / ratio * 100:.1f}%",
        "saving": f", Saving ${saving:.1f} in GPT-4.",
    }
    if labels is not None:
        res["fn_labeled_original_prompt"] = labels
    return res


class ReferenceMode:
    """Stateless per call; ``run`` is a generator yielding inference requests."""

    def __init__(self, tk: EngineTokenizer, max_force_token: int = 100) -> None:
        self.tk = tk
        self.enc: tiktoken.Encoding = _cl100k()
        self.max_force_token = max_force_token
        self._pure_to_ids: dict[str, list[int]] = {}
        for i, s in enumerate(tk.pure):
            self._pure_to_ids.setdefault(s, []).append(i)

    # ------------------------------------------------------------------ chunking
    def _chunk(self, text: str, end_tokens: set[str]) -> list[str]:
        toks = self.tk.tokenize(text)
        n, limit = len(toks), MAX_SEQ_LEN - 2
        is_end = np.array([t in end_tokens for t in toks], dtype=bool)
        chunks, st = [], 0
        while st < n:
            if st + limit > n - 1:
                chunks.append(self.tk.tokens_to_string(toks[st:n]))
                break
            ed = st + limit
            hits = np.flatnonzero(is_end[st + 1 : ed + 1])
            if hits.size:
                ed = st + 1 + int(hits[-1])
            chunks.append(self.tk.tokens_to_string(toks[st : ed + 1]))
            st = ed + 1
        return chunks

    def _frame(self, chunk: str) -> np.ndarray:
        ids = self.tk.encode_ids(chunk)
        framed = np.concatenate(([self.tk.ref_cls_id], ids, [self.tk.ref_sep_id]))
        return framed[:MAX_SEQ_LEN].astype(np.int64)

    # ------------------------------------------------------------------ merging
    def _merge(
        self, ids: np.ndarray, p: np.ndarray, force: set[str], tmap: dict[str, str], opt: RefOptions
    ) -> _Chunk:
        tk = self.tk
        keep = ~tk.is_skipped[ids]
        ids, p = ids[keep], p[keep].astype(np.float32)
        if ids.size == 0:
            e = np.zeros(0, np.float32)
            return _Chunk([], e, np.zeros(0, bool), e)
        used = set(tmap.values())
        begins = tk.begins[ids].copy()
        forced_pure = np.zeros(len(ids), dtype=bool)
        special_pure = force | used
        for s in special_pure:
            for i in self._pure_to_ids.get(s, ()):
                forced_pure |= ids == i
        if tk.family == "xlm-roberta":
            for s in special_pure:
                raw = tk.tok.token_to_id(s)
                if raw is not None:
                    begins |= ids == raw
        else:
            begins |= forced_pure
        begins[0] = True  # llmlingua would crash on a leading continuation; never happens
        starts = np.flatnonzero(begins)
        lengths = np.diff(np.append(starts, len(ids)))
        word_of = np.repeat(np.arange(len(starts)), lengths)

        vals = p.copy()
        pyf = np.zeros(len(ids), dtype=bool)
        f_begin = begins & forced_pure
        vals[f_begin], pyf[f_begin] = 1.0, True
        if opt.force_reserve_digit:
            digit = tk.has_digit[ids].copy()
            restored = {}
            for k in np.flatnonzero(begins & tk.is_placeholder[ids]):
                s = tk.strings[int(ids[k])]
                if s not in restored:
                    restored[s] = bool(re.search(r"\d", _restore(s, tmap)))
                digit[k] = restored[s]
            vals[digit], pyf[digit] = 1.0, True

        parts = [tk.pure[i] for i in ids.tolist()]
        for pos in starts.tolist():
            s = tk.strings[int(ids[pos])]
            parts[pos] = _restore(s, tmap) if tk.is_placeholder[ids[pos]] else s
        words = [
            "".join(parts[s : s + n])
            for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)
        ]

        raw_first = p[starts]
        if opt.token_to_word == "mean":
            probs = sequential_mean(vals, starts, lengths)
            py_float = np.logical_and.reduceat(pyf, starts)
            no_force = sequential_mean(raw_first[word_of], starts, lengths)
        elif opt.token_to_word == "first":
            probs, py_float, no_force = vals[starts], pyf[starts], raw_first
        else:
            raise NotImplementedError(f"token_to_word={opt.token_to_word!r}")
        return _Chunk(words, probs, py_float, no_force)

    # ------------------------------------------------------------------ selection
    def _select(
        self, ch: _Chunk, reduce_rate: float, force: set[str], opt: RefOptions
    ) -> tuple[str, list[str], list[int]]:
        words = ch.words
        if not words:
            return "", [], []
        py_any = bool(ch.py_float.any())
        arr = ch.probs.astype(np.float64) if py_any else ch.probs.copy()
        is_force = np.array([w in force for w in words], dtype=bool) if force else None
        if opt.drop_consecutive and is_force is not None and is_force.any():
            t0 = np.percentile(arr, int(100 * reduce_rate))
            gt = np.cumsum((arr > t0) & ~is_force)
            prev_word, prev_idx = None, -1
            zeroed = False
            for i in np.flatnonzero(is_force).tolist():
                # llmlingua's flag: any non-force word above t0 since the previous force word
                between = bool(gt[i] - (gt[prev_idx] if prev_idx >= 0 else 0) > 0)
                if not between and words[i] == prev_word:
                    if not zeroed and arr.dtype != np.float64:
                        arr = arr.astype(np.float64)
                    zeroed = True
                    arr[i] = 0.0
                prev_word, prev_idx = words[i], i
        counts = np.array([len(t) for t in self.enc.encode_ordinary_batch(words)], dtype=np.int64)
        threshold = np.percentile(np.repeat(arr, counts), int(100 * reduce_rate + 1))
        keep = (arr > threshold) | ((threshold == 1.0) & (arr == threshold))
        labels = keep.astype(int).tolist()
        if opt.drop_consecutive and is_force is not None:
            last = None
            for i in np.flatnonzero(keep).tolist():
                if is_force[i] and last == words[i]:
                    labels[i] = 0
                else:
                    last = words[i]
        kept = [w for w, lab in zip(words, labels, strict=True) if lab]
        out = self.tk.tokens_to_string(kept)
        if self.tk.family == "xlm-roberta":
            words = [w.lstrip("▁") for w in words]
        return out, words, labels

    # ------------------------------------------------------------------ driver
    def run(self, contexts: list[str], opt: RefOptions) -> ModeGen:
        tk = self.tk
        force_list = list(opt.force_tokens)
        if len(force_list) > self.max_force_token:
            raise ValueError(f"at most {self.max_force_token} force_tokens are supported")
        tmap: dict[str, str] = {}
        for i, t in enumerate(force_list):
            if len(tk.tokenize(t)) != 1:
                tmap[t] = PLACEHOLDERS[i]
        ends = set(opt.chunk_end_tokens) | {tmap[c] for c in opt.chunk_end_tokens if c in tmap}
        force = set(force_list)
        use_filter = opt.use_context_level_filter and len(contexts) > 1

        n_orig = 0
        chunked: list[list[str]] = []
        for text in contexts:
            n_orig += len(self.enc.encode(text))
            for ori, new in tmap.items():
                text = text.replace(ori, new)
            chunked.append(self._chunk(text, ends))

        rate = opt.rate
        merged: list[list[_Chunk]] | None = None
        keep_ctx = list(range(len(contexts)))
        if use_filter:
            merged = yield from self._infer(chunked, force, tmap, opt)
            ctx_words, ctx_probs = [], []
            for chunks in merged:
                ws = [w for c in chunks for w in c.words]
                if tk.family == "xlm-roberta":
                    ws = [w.lstrip("▁") for w in ws]
                ctx_words.append(ws)
                nf = np.concatenate([c.no_force for c in chunks]) if chunks else np.zeros(0)
                s = flat_sequential_sum(nf)
                ctx_probs.append(np.float32(s / np.float32(len(nf))) if len(nf) else np.float32(0))
            clr = _context_rate(opt, rate, n_orig, len(contexts))
            thr = np.percentile(np.array(ctx_probs), int(100 * (1 - clr)))
            keep_ctx = [
                i for i, p in enumerate(ctx_probs) if p >= thr or i in set(opt.force_context_ids)
            ]
            n_res = sum(len(self.enc.encode(c)) for i in keep_ctx for c in chunked[i])
            if opt.target_token >= 0:
                rate = min(opt.target_token / n_res, 1.0) if n_res else 1.0
        elif opt.target_token > 0:
            rate = min(opt.target_token / n_orig, 1.0) if n_orig else 1.0

        reduce_rate = max(0, 1 - rate) if opt.use_token_level_filter else 0
        outputs: list[str] = []
        words_all: list[list[str]] = []
        labels_all: list[list[int]] = []
        if reduce_rate <= 0:
            for i in keep_ctx:
                restored = [_restore(c, tmap) for c in chunked[i]]
                ws = [w for c in restored for w in _BYPASS_WORDS.findall(c)]
                outputs.append("".join(restored))
                words_all.append(ws)
                labels_all.append([1] * len(ws))
        else:
            if merged is None:
                merged = yield from self._infer(chunked, force, tmap, opt)
            for i in keep_ctx:
                outs, ws, labs = [], [], []
                for ch in merged[i]:
                    o, w, lab = self._select(ch, reduce_rate, force, opt)
                    outs.append(o)
                    ws.extend(w)
                    labs.extend(lab)
                outputs.append("".join(outs))
                words_all.append(ws)
                labels_all.append(labs)

        n_comp = sum(len(self.enc.encode(c)) for c in outputs)
        labels = None
        if opt.return_word_label:
            pairs: list[tuple[str, int]] = []
            j = 0
            for i in range(len(contexts)):
                if i in keep_ctx:
                    pairs.extend(zip(words_all[j], labels_all[j], strict=True))
                    j += 1
                else:
                    pairs.extend((w, 0) for w in ctx_words[i])
            labels = opt.word_sep.join(f"{w}{opt.label_sep}{lab}" for w, lab in pairs)
        return result_dict(outputs, n_orig, n_comp, labels)

    def _infer(
        self, chunked: list[list[str]], force: set[str], tmap: dict[str, str], opt: RefOptions
    ) -> Generator[InferRequest, list[np.ndarray], list[list[_Chunk]]]:
        flat = [c for chunks in chunked for c in chunks]
        seqs = [self._frame(c) for c in flat]
        probs = yield InferRequest(seqs, MAX_SEQ_LEN, self.tk.ref_pad_id)
        merged_flat = [
            self._merge(s, p, force, tmap, opt) for s, p in zip(seqs, probs, strict=True)
        ]
        out, k = [], 0
        for chunks in chunked:
            out.append(merged_flat[k : k + len(chunks)])
            k += len(chunks)
        return out


def _restore(token: str, tmap: dict[str, str]) -> str:
    for ori, new in tmap.items():
        token = token.replace(new, ori)
    return token


def _context_rate(opt: RefOptions, rate: float, n_orig: int, n_ctx: int) -> float:
    clr, cltt = opt.context_level_rate, opt.context_level_target_token
    if opt.target_context <= 0 and clr >= 1.0 and cltt <= 0:
        if opt.target_token < 0 and rate < 1.0:
            clr = (rate + 1.0) / 2 if opt.use_token_level_filter else rate
        if opt.target_token >= 0:
            cltt = opt.target_token * 2 if opt.use_token_level_filter else opt.target_token
    if opt.target_context >= 0:
        clr = min(opt.target_context / n_ctx, 1.0)
    if cltt >= 0:
        clr = min(cltt / n_orig, 1.0) if n_orig else 1.0
    return clr


def _cl100k() -> tiktoken.Encoding:
    from policies.tokens import get_encoding

    return get_encoding("cl100k_base")
