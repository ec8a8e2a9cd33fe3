"""PolicyRunner on the real ONNX engine with a tiny random bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policies.config import CompressRule, Config, ContextFilter, ModelConfig, RouteConfig
from policies.policy import PolicyRunner
from tests.fixtures.models import corpus_lines
from tests.test_policy import UPSTREAM, chat

pytest.importorskip("onnxruntime")


def _text(n: int, start: int = 0) -> str:
    lines = corpus_lines()
    return " ".join(lines[(start + i) % len(lines)] for i in range(n))


@pytest.fixture
async def runner_for(tiny_bundle_xlmr: Path):
    made: list[PolicyRunner] = []

    async def make(*rules: CompressRule, **route_kw: Any) -> tuple[PolicyRunner, RouteConfig]:
        route = RouteConfig(name="r", upstream="up", compress=rules, **route_kw)
        config = Config(
            model=ModelConfig(path=str(tiny_bundle_xlmr), device="cpu"), routes=(route,)
        )
        runner = PolicyRunner.from_config(config)
        await runner.start()
        made.append(runner)
        return runner, route

    yield make
    for runner in made:
        await runner.close()


async def test_real_engine_compresses_faithfully(runner_for: Any) -> None:
    runner, route = await runner_for(
        CompressRule(roles=("user",), rate=0.5, min_tokens=0, keep_last_user=False)
    )
    assert runner.ready
    original = _text(6) + " Contact ops_team@example.com about ticket 4f9a2b7c1d."
    body, raw = chat({"role": "user", "content": original})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    assert outcome.status == "applied", outcome
    out = json.loads(outcome.body)["messages"][0]["content"]
    assert "ops_team@example.com" in out and "4f9a2b7c1d" in out
    assert outcome.tokens_after < outcome.tokens_before
    again = await runner.apply(route, UPSTREAM, body, raw, {})
    assert again.body == outcome.body


async def test_real_engine_context_filter(runner_for: Any) -> None:
    rule = CompressRule(
        roles=("user",),
        tags=("doc",),
        rate=0.9,
        min_tokens=0,
        keep_last_user=False,
        context_filter=ContextFilter(rate=0.5),
    )
    runner, route = await runner_for(rule)
    docs = [_text(3, start=5 * i) for i in range(4)]
    text = "\n".join(f'<doc id="{i}">{d}</doc>' for i, d in enumerate(docs)) + "\nQuestion?"
    body, raw = chat({"role": "user", "content": text})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    out = json.loads(outcome.body)["messages"][0]["content"]
    assert outcome.status == "applied"
    kept = out.count("<doc id=")
    assert 1 <= kept < 4 and out.endswith("\nQuestion?")


async def test_real_engine_reference_mode(runner_for: Any) -> None:
    rule = CompressRule(
        roles=("user",), rate=0.5, min_tokens=0, keep_last_user=False, mode="reference"
    )
    runner, route = await runner_for(rule)
    body, raw = chat({"role": "user", "content": _text(6)})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    assert outcome.status == "applied" and outcome.tokens_after < outcome.tokens_before
