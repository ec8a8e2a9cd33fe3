"""How hard to compress one region: rate, target_tokens or size ranges.

Everything is turned into one *rate* (fraction of tokens kept) for the
compressible part of a region, so that regions with code blocks cut out still
hit the requested budget for the region as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

MIN_RATE = 0.02  # below this the engine output is noise; also avoids rate=0 crashes


class Amount(Protocol):
    rate: float | None
    target_tokens: int | None


def pick_amount(rule: Any, tokens: int) -> Amount | None:
    """The rule's amount for a region of ``tokens`` tokens, None if nothing applies.

    ``ranges`` are tried in order (inclusive bounds, ``max_tokens: null`` unbounded);
    the first match wins and no match means "leave it alone".
    """
    ranges: Sequence[Any] = getattr(rule, "ranges", None) or ()
    if ranges:
        for entry in ranges:
            low = entry.min_tokens or 0
            high = entry.max_tokens
            if tokens >= low and (high is None or tokens <= high):
                return entry  # type: ignore[no-any-return]
        return None
    if rule.rate is None and rule.target_tokens is None:
        return None
    return rule  # type: ignore[no-any-return]


def effective_rate(
    amount: Amount | None,
    region_tokens: int,
    touchable_tokens: int,
    override_rate: float | None = None,
) -> float | None:
    """Rate for the touchable text, or None when no compression is wanted.

    ``target_tokens`` is a budget for the whole region: untouchable tokens (code,
    JSON) are spent first and the rest goes to the prose.
    """
    if touchable_tokens <= 0:
        return None
    if override_rate is not None:
        rate = override_rate
    elif amount is None:
        return None
    elif amount.target_tokens is not None:
        budget = amount.target_tokens - (region_tokens - touchable_tokens)
        rate = budget / touchable_tokens
    elif amount.rate is not None:
        rate = amount.rate
    else:
        return None
    if rate >= 1.0:
        return None
    return round(max(MIN_RATE, rate), 4)


def parse_rate_header(value: str) -> float:
    """``x-linguagate-rate``: a float in (0, 1]; raises ValueError otherwise."""
    rate = float(value.strip())
    if not (0.0 < rate <= 1.0):  # also rejects nan
        raise ValueError(f"x-linguagate-rate must be a number in (0, 1], got {value!r}")
    return rate
