"""Amounts (rate, target_tokens, ranges, rate header) and the segment cache."""

from __future__ import annotations

import pytest

from policies.amounts import MIN_RATE, effective_rate, parse_rate_header, pick_amount
from policies.config import CompressRule, RangeRule
from policies.segment_cache import SegmentCache, text_digest


def test_rate_and_target_tokens() -> None:
    rule = CompressRule(rate=0.4)
    assert effective_rate(pick_amount(rule, 1000), 1000, 1000) == 0.4
    rule = CompressRule(target_tokens=300)
    assert effective_rate(pick_amount(rule, 1000), 1000, 1000) == 0.3
    # untouchable tokens (code) are spent from the budget first
    assert effective_rate(pick_amount(rule, 1000), 1000, 800) == 0.125
    assert effective_rate(pick_amount(rule, 200), 200, 200) is None  # already under target
    assert effective_rate(pick_amount(rule, 1000), 1000, 100) == MIN_RATE
    assert pick_amount(CompressRule(), 1000) is None  # no amount: nothing to do


def test_ranges_first_match_inclusive() -> None:
    rule = CompressRule(
        ranges=(
            RangeRule(min_tokens=100, max_tokens=1000, rate=0.7),
            RangeRule(min_tokens=1000, max_tokens=None, target_tokens=500),
        )
    )
    assert pick_amount(rule, 99) is None
    assert pick_amount(rule, 1000).rate == 0.7  # type: ignore[union-attr]
    assert effective_rate(pick_amount(rule, 5000), 5000, 5000) == 0.1


def test_override_rate_wins() -> None:
    assert effective_rate(None, 1000, 1000, override_rate=0.3) == 0.3
    assert effective_rate(None, 1000, 1000, override_rate=1.0) is None


@pytest.mark.parametrize("value", ["0", "-0.1", "1.5", "abc", "", "nan", "inf"])
def test_bad_rate_headers(value: str) -> None:
    with pytest.raises(ValueError):
        parse_rate_header(value)


def test_good_rate_header() -> None:
    assert parse_rate_header(" 0.25 ") == 0.25 and parse_rate_header("1") == 1.0


def test_segment_cache_lru_and_bounds() -> None:
    cache = SegmentCache(max_entries=2, max_bytes=10_000)
    keys = [("m", "r", 0.5, text_digest(t)) for t in ("a", "b", "c")]
    cache.put(keys[0], "A")
    cache.put(keys[1], "B")
    assert cache.get(keys[0]) == "A"  # a is now most recent
    cache.put(keys[2], "C")
    assert cache.get(keys[1]) is None and cache.get(keys[0]) == "A" and len(cache) == 2
    small = SegmentCache(max_entries=100, max_bytes=200)
    small.put(keys[0], "x" * 30)
    small.put(keys[1], "y" * 30)
    assert len(small) == 1 and small.size_bytes <= 200
    small.put(keys[2], "z" * 1000)  # larger than the whole cache: not stored
    assert small.get(keys[2]) is None
