"""Model prices (USD per 1M tokens) and per-request cost.

Savings are only believable when the price basis is stated, so every price
carries where it came from (config entry or the dated built-in table) and the
ledger stores that basis next to each cost.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# OpenAI standard-tier list prices (text tokens, USD per 1M) as published on
# https://openai.com/api/pricing; the date below is when they were checked.
BUILTIN_PRICES_AS_OF = "2025-08-07"

PER_MILLION = 1_000_000.0


@dataclass(frozen=True)
class Price:
    """Price of one model glob. ``cached_input`` None means no cache discount."""

    model: str
    input: float
    cached_input: float | None
    output: float
    source: str  # "config" or "builtin:<date>"

    @property
    def basis(self) -> str:
        """Short label stored per ledger row, e.g. ``builtin:2025-08-07 gpt-4o*``."""
        return f"{self.source} {self.model}"


def _b(model: str, inp: float, cached: float | None, out: float) -> Price:
    return Price(model, inp, cached, out, f"builtin:{BUILTIN_PRICES_AS_OF}")


# First glob match wins, so more specific globs come first.
BUILTIN_PRICES: tuple[Price, ...] = (
    _b("gpt-5-pro*", 15.00, None, 120.00),
    _b("gpt-5-mini*", 0.25, 0.025, 2.00),
    _b("gpt-5-nano*", 0.05, 0.005, 0.40),
    _b("gpt-5*", 1.25, 0.125, 10.00),
    _b("gpt-4.1-mini*", 0.40, 0.10, 1.60),
    _b("gpt-4.1-nano*", 0.10, 0.025, 0.40),
    _b("gpt-4.1*", 2.00, 0.50, 8.00),
    _b("gpt-4o-mini*", 0.15, 0.075, 0.60),
    _b("gpt-4o*", 2.50, 1.25, 10.00),
    _b("chatgpt-4o*", 5.00, None, 15.00),
    _b("gpt-4-turbo*", 10.00, None, 30.00),
    _b("gpt-3.5-turbo*", 0.50, None, 1.50),
    _b("o1-mini*", 1.10, 0.55, 4.40),
    _b("o1-pro*", 150.00, None, 600.00),
    _b("o1*", 15.00, 7.50, 60.00),
    _b("o3-mini*", 1.10, 0.55, 4.40),
    _b("o3-pro*", 20.00, None, 80.00),
    _b("o3*", 2.00, 0.50, 8.00),
    _b("o4-mini*", 1.10, 0.275, 4.40),
)


@dataclass(frozen=True)
class Cost:
    """Cost of one request as sent (after) and as it would have been (before)."""

    before_usd: float
    after_usd: float
    saved_usd: float  # (tokens_before - tokens_after) x list input price


class PriceTable:
    """Ordered price globs: config entries first, then the built-in table."""

    def __init__(self, prices: Iterable[Price]) -> None:
        self.prices = tuple(prices)
        self._lookup = functools.lru_cache(maxsize=1024)(self._find)

    @classmethod
    def from_entries(cls, entries: Iterable[Any], *, builtin: bool = True) -> PriceTable:
        """Build from config ``prices`` (objects or dicts with model/input/cached_input/output)."""
        own = [_entry_to_price(e) for e in entries]
        return cls([*own, *(BUILTIN_PRICES if builtin else ())])

    @classmethod
    def from_config(cls, config: Any) -> PriceTable:
        return cls.from_entries(getattr(config, "prices", None) or ())

    def _find(self, model: str) -> Price | None:
        name = model.strip().lower()
        # "openai/gpt-4o" style provider prefixes: price the model part.
        candidates = [name] if "/" not in name else [name, name.rsplit("/", 1)[1]]
        for candidate in candidates:
            for price in self.prices:
                if fnmatch.fnmatchcase(candidate, price.model.lower()):
                    return price
        return None

    def lookup(self, model: str | None) -> Price | None:
        """Price for ``model`` or None when no glob matches (cost left unknown)."""
        if not model:
            return None
        return self._lookup(model)


def _entry_to_price(entry: Any) -> Price:
    def get(key: str) -> Any:
        return entry.get(key) if isinstance(entry, dict) else getattr(entry, key, None)

    cached = get("cached_input")
    return Price(
        model=str(get("model")),
        input=float(get("input") or 0.0),
        cached_input=None if cached is None else float(cached),
        output=float(get("output") or 0.0),
        source="config",
    )


def request_cost(
    price: Price,
    *,
    tokens_before: int | None,
    tokens_after: int | None,
    prompt_tokens: int | None,
    cached_tokens: int | None,
    completion_tokens: int | None,
) -> Cost:
    """Cost as sent and as it would have been without compression.

    ``after`` uses provider usage (prompt, cached, completion) when present and
    falls back to our own count of the compressed prompt. ``before`` adds the
    removed tokens at the list input price, so before - after == saved.
    """
    saved_tokens = 0
    if tokens_before is not None:
        after = tokens_before if tokens_after is None else tokens_after
        saved_tokens = max(tokens_before - after, 0)
    prompt = prompt_tokens if prompt_tokens is not None else tokens_after
    if prompt is None:
        prompt = tokens_before or 0
    cached = min(cached_tokens or 0, prompt)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    after_usd = (
        (prompt - cached) * price.input
        + cached * cached_rate
        + (completion_tokens or 0) * price.output
    ) / PER_MILLION
    saved_usd = saved_tokens * price.input / PER_MILLION
    return Cost(before_usd=after_usd + saved_usd, after_usd=after_usd, saved_usd=saved_usd)


PRICE_BASIS = (
    "cost_saved_usd = (tokens_before - tokens_after) x list input price per model; "
    "excludes cached-input discounts; tokens counted with the target model's tokenizer "
    "over the whole prompt"
)
