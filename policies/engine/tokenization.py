"""The bundle's tokenizer, with per-id tables that make post-processing vectorisable.

LLMLingua-2's word merging looks at token *strings* (``▁`` / ``##`` prefixes,
punctuation, special tokens). Evaluating those string tests once per vocabulary
entry, instead of once per token per request, lets the hot path work on id arrays.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import numpy as np
from tokenizers import AddedToken, Tokenizer

N_PLACEHOLDERS = 100  # llmlingua registers [NEW0]..[NEW99] as extra special tokens
PLACEHOLDERS = tuple(f"[NEW{i}]" for i in range(N_PLACEHOLDERS))
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class FamilySpec:
    """Special-token strings of a model family."""

    cls: str
    sep: str
    pad: str
    unk: str
    skipped: frozenset[str]  # token strings llmlingua drops while merging words
    marker: str  # word-start marker ("▁") or continuation prefix ("##")


FAMILIES = {
    "xlm-roberta": FamilySpec(
        cls="<s>",
        sep="</s>",
        pad="<pad>",
        unk="<unk>",
        skipped=frozenset({"<s>", "</s>", "<unk>", "<pad>", "<mask>"}),
        marker="▁",
    ),
    # llmlingua sets pad_token to None for mBERT (pad id 0 is falsy), so [PAD] is not skipped.
    "bert": FamilySpec(
        cls="[CLS]",
        sep="[SEP]",
        pad="[PAD]",
        unk="[UNK]",
        skipped=frozenset({"[CLS]", "[SEP]", "[UNK]", "[MASK]"}),
        marker="##",
    ),
}


class EngineTokenizer:
    """``tokenizers.Tokenizer`` plus the id-level tables both modes need."""

    def __init__(self, path: str, family: str) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r}")
        self.family = family
        self.spec = FAMILIES[family]
        self.tok = Tokenizer.from_file(path)
        self.tok.no_padding()
        self.tok.no_truncation()
        self.base_vocab = self.tok.get_vocab_size(with_added_tokens=True)
        self.tok.add_special_tokens(
            [AddedToken(p, special=True, normalized=False) for p in PLACEHOLDERS]
        )
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)
        self.placeholder_ids = np.array([self.id_of(p) for p in PLACEHOLDERS], dtype=np.int64)
        self.unk_id = self.id_of(self.spec.unk)
        self.cls_id = self.id_of(self.spec.cls)
        self.sep_id = self.id_of(self.spec.sep)
        self.pad_id = self.id_of(self.spec.pad)
        # What llmlingua's dataset really feeds: its "[CLS]"/"[SEP]"/"[PAD]" strings (bug Q1:
        # unknown to XLM-R, so they become <unk>).
        self.ref_cls_id = self._id_or_unk("[CLS]")
        self.ref_sep_id = self._id_or_unk("[SEP]")
        self.ref_pad_id = self._id_or_unk("[PAD]")
        self._build_tables()

    def id_of(self, token: str) -> int:
        idx = self.tok.token_to_id(token)
        if idx is None:
            raise ValueError(f"tokenizer has no {token!r} token")
        return int(idx)

    def _id_or_unk(self, token: str) -> int:
        idx = self.tok.token_to_id(token)
        return self.unk_id if idx is None else int(idx)

    def _build_tables(self) -> None:
        n = self.vocab_size
        strings = [self.tok.id_to_token(i) or "" for i in range(n)]
        self.strings = strings
        marker = self.spec.marker
        self.is_skipped = np.array([s in self.spec.skipped for s in strings], dtype=bool)
        self.has_digit = np.array([bool(_DIGIT.search(s)) for s in strings], dtype=bool)
        if self.family == "xlm-roberta":
            self.pure = [s.lstrip("▁") for s in strings]
            self.begins = np.array(
                [s.startswith(marker) or s in string.punctuation for s in strings], dtype=bool
            )
        else:
            self.pure = [s.lstrip("#") for s in strings]
            self.begins = np.array([not s.startswith(marker) for s in strings], dtype=bool)
        self.is_placeholder = np.zeros(n, dtype=bool)
        self.is_placeholder[self.placeholder_ids] = True
        self.pure_is_placeholder = np.array([s in PLACEHOLDERS for s in self.pure], dtype=bool)

    # --- llmlingua-compatible string API -------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """HF ``tokenizer.tokenize``: token strings, no special framing."""
        return list(self.tok.encode(text, add_special_tokens=False).tokens)

    def encode_ids(self, text: str) -> np.ndarray:
        return np.asarray(self.tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def encode_ids_batch(self, texts: list[str]) -> list[np.ndarray]:
        encs = self.tok.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encs]

    def tokens_to_string(self, tokens: list[str]) -> str:
        """HF ``convert_tokens_to_string``: the backend decoder over token strings."""
        decoder = self.tok.decoder
        if decoder is None:
            return " ".join(tokens)
        return str(decoder.decode(tokens))
