"""Price table lookup order, config precedence and the per-request cost formula."""

from __future__ import annotations

import pytest

from policies.config import PriceEntry
from proxy.pricing import BUILTIN_PRICES, BUILTIN_PRICES_AS_OF, PriceTable, request_cost


def test_builtin_globs_are_all_reachable() -> None:
    """A broad glob listed before a narrow one would silently misprice the narrow model."""
    table = PriceTable.from_entries(())
    for price in BUILTIN_PRICES:
        assert table.lookup(price.model.rstrip("*")) is price


@pytest.mark.parametrize(
    ("model", "glob", "inp"),
    [
        ("gpt-4o", "gpt-4o*", 2.50),
        ("gpt-4o-2024-08-06", "gpt-4o*", 2.50),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini*", 0.15),
        ("gpt-4.1-mini", "gpt-4.1-mini*", 0.40),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini*", 0.25),
        ("gpt-5", "gpt-5*", 1.25),
        ("o4-mini", "o4-mini*", 1.10),
        ("o3", "o3*", 2.00),
        ("GPT-3.5-Turbo", "gpt-3.5-turbo*", 0.50),
        ("openai/gpt-4o-mini", "gpt-4o-mini*", 0.15),
    ],
)
def test_builtin_lookup(model: str, glob: str, inp: float) -> None:
    price = PriceTable.from_entries(()).lookup(model)
    assert price is not None
    assert (price.model, price.input) == (glob, inp)
    assert price.source == f"builtin:{BUILTIN_PRICES_AS_OF}"


def test_config_entries_take_precedence_and_unknown_models_have_no_price() -> None:
    table = PriceTable.from_entries(
        [PriceEntry(model="gpt-4o*", input=1.0, output=2.0, cached_input=0.5)]
    )
    price = table.lookup("gpt-4o-mini")
    assert price is not None and price.source == "config" and price.input == 1.0
    assert price.basis == "config gpt-4o*"
    assert table.lookup("claude-3-opus") is None
    assert table.lookup(None) is None
    assert PriceTable.from_entries([{"model": "my-*", "input": 3, "output": 4}]).lookup("my-x")


def test_request_cost_uses_provider_usage_and_saved_at_list_input() -> None:
    price = PriceTable.from_entries(()).lookup("gpt-4o")
    assert price is not None
    cost = request_cost(
        price,
        tokens_before=10_000,
        tokens_after=4_000,
        prompt_tokens=4_100,
        cached_tokens=1_000,
        completion_tokens=500,
    )
    after = (3_100 * 2.50 + 1_000 * 1.25 + 500 * 10.0) / 1e6
    assert cost.after_usd == pytest.approx(after)
    assert cost.saved_usd == pytest.approx(6_000 * 2.50 / 1e6)
    assert cost.before_usd == pytest.approx(after + cost.saved_usd)


def test_request_cost_without_usage_or_cache_price() -> None:
    price = PriceTable.from_entries(()).lookup("gpt-4-turbo")
    assert price is not None and price.cached_input is None
    cost = request_cost(
        price,
        tokens_before=1_000,
        tokens_after=None,  # nothing compressed: after == before
        prompt_tokens=None,
        cached_tokens=200,  # no cache discount for this model: full input rate
        completion_tokens=None,
    )
    assert cost.saved_usd == 0
    assert cost.after_usd == pytest.approx(1_000 * 10.0 / 1e6)
