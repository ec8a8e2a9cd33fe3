"""PolicyRunner with a deterministic fake engine: rules, protections, statuses, invariants."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import pytest

from policies.config import (
    CompressRule,
    Config,
    ContextFilter,
    RangeRule,
    RouteConfig,
    UpstreamConfig,
)
from policies.policy import PolicyRunner
from policies.rewrite import count_prompt
from policies.tokens import encoding_for_model
from tests.policy_fakes import EngineBusy, FakeEngine

UPSTREAM = UpstreamConfig(name="up", base_url="http://127.0.0.1:9/v1")
PROSE = (
    "The committee met on Tuesday to discuss the budget for the coming year and agreed "
    "that the proposal needed more work before it could be approved by the board. "
)
LONG = PROSE * 4


def rule(**kw: Any) -> CompressRule:
    kw.setdefault("rate", 0.5)
    kw.setdefault("min_tokens", 0)
    return CompressRule(**kw)


def make(*rules: CompressRule, engine: FakeEngine | None = None, **route_kw: Any):
    route = RouteConfig(name="r", upstream="up", compress=tuple(rules), **route_kw)
    runner = PolicyRunner(Config(routes=(route,)), engine=engine or FakeEngine())
    return runner, route


def chat(*messages: dict[str, Any], model: str = "gpt-4o") -> tuple[dict[str, Any], bytes]:
    body = {"model": model, "messages": list(messages), "temperature": 0.2}
    return body, json.dumps(body).encode()


async def run(runner: PolicyRunner, route: RouteConfig, body: dict, raw: bytes, **headers: str):
    snapshot = copy.deepcopy(body)
    outcome = await runner.apply(route, UPSTREAM, body, raw, headers)
    assert body == snapshot, "apply must not mutate the parsed body"
    sent = json.loads(outcome.body)
    return outcome, sent


def texts(body: dict[str, Any]) -> list[Any]:
    return [m.get("content") for m in body["messages"]]


async def test_no_rules_forwards_original_bytes() -> None:
    runner, route = make()
    body, raw = chat({"role": "user", "content": LONG})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    assert outcome.body is raw and not outcome.changed and outcome.status == "none"
    assert outcome.tokens_before is None


async def test_roles_compress_and_last_user_is_kept() -> None:
    runner, route = make(rule(roles=("user", "system")))
    body, raw = chat(
        {"role": "system", "content": LONG},
        {"role": "user", "content": LONG},
        {"role": "assistant", "content": LONG},
        {"role": "user", "content": LONG},
    )
    outcome, sent = await run(runner, route, body, raw)
    assert outcome.status == "applied" and outcome.changed
    system, user, assistant, last = texts(sent)
    assert len(system) < len(LONG) and len(user) < len(LONG)
    assert assistant == LONG and last == LONG
    enc = encoding_for_model("gpt-4o")
    assert outcome.tokens_before == count_prompt(body["messages"], enc)
    assert outcome.tokens_after == count_prompt(sent["messages"], enc)
    assert outcome.tokens_after < outcome.tokens_before
    assert outcome.encoding == "o200k_base"
    assert outcome.body == json.dumps(sent, ensure_ascii=False, separators=(",", ":")).encode()


async def test_keep_last_user_false_and_min_tokens() -> None:
    runner, route = make(rule(roles=("user",), keep_last_user=False, min_tokens=50))
    body, raw = chat(
        {"role": "user", "content": "short question?"}, {"role": "user", "content": LONG}
    )
    _outcome, sent = await run(runner, route, body, raw)
    assert texts(sent)[0] == "short question?"
    assert len(texts(sent)[1]) < len(LONG)


async def test_nothing_selected_keeps_raw_bytes_and_counts() -> None:
    runner, route = make(rule(roles=("system",)))
    body, raw = chat({"role": "user", "content": LONG})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    assert outcome.body is raw and outcome.status == "none" and not outcome.changed
    assert outcome.tokens_before == outcome.tokens_after and outcome.tokens_before > 0


async def test_tool_outputs_by_name_and_tool_call_integrity() -> None:
    runner, route = make(rule(roles=(), tools=("search",)))
    calls = [
        {"id": "a", "type": "function", "function": {"name": "search", "arguments": '{"q":"x"}'}},
        {"id": "b", "type": "function", "function": {"name": "calc", "arguments": '{"e":"1+1"}'}},
    ]
    body, raw = chat(
        {"role": "user", "content": "find it"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "a", "content": LONG},
        {"role": "tool", "tool_call_id": "b", "name": "calc", "content": LONG},
        {"role": "user", "content": "thanks"},
    )
    outcome, sent = await run(runner, route, body, raw)
    assert outcome.status == "applied"
    assert len(sent["messages"][2]["content"]) < len(LONG)
    assert sent["messages"][3]["content"] == LONG
    # everything except the selected text is identical
    sent["messages"][2]["content"] = LONG
    assert sent == body


async def test_multimodal_only_text_parts_change() -> None:
    runner, route = make(rule(roles=("user",), keep_last_user=False))
    image = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
    }
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    body, raw = chat(
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": LONG},
                image,
                audio,
                {"type": "text", "text": LONG},
            ],
        }
    )
    _outcome, sent = await run(runner, route, body, raw)
    parts = sent["messages"][0]["content"]
    assert parts[1] == image and parts[2] == audio and sent["messages"][0]["name"] == "ann"
    assert len(parts[0]["text"]) < len(LONG) and len(parts[3]["text"]) < len(LONG)
    assert list(sent) == list(body)  # key order kept


async def test_tags_compress_only_inside_and_strip_tags() -> None:
    text = f'Question first.\n<doc id="1">{LONG}</doc>\nbetween\n<doc>{LONG}</doc>\nEnd.'
    for strip in (False, True):
        runner, route = make(
            rule(roles=("user",), tags=("doc",), strip_tags=strip, keep_last_user=False)
        )
        body, raw = chat({"role": "user", "content": text})
        _outcome, sent = await run(runner, route, body, raw)
        out = texts(sent)[0]
        assert (
            out.startswith("Question first.\n") and "\nbetween\n" in out and out.endswith("\nEnd.")
        )
        assert ('<doc id="1">' in out) is not strip and ("</doc>" in out) is not strip
        assert len(out) < len(text)


async def test_tags_rule_leaves_untagged_parts_to_later_rules() -> None:
    runner, route = make(
        rule(roles=("user",), tags=("doc",)),
        rule(roles=("user",), rate=0.3),
    )
    body, raw = chat(
        {"role": "user", "content": f"<doc>{LONG}</doc>"},
        {"role": "user", "content": LONG},
        {"role": "user", "content": "q"},
    )
    _outcome, _sent = await run(runner, route, body, raw)
    rates = sorted(call["rate"] for call in runner.engine.calls)  # type: ignore[union-attr]
    assert rates == [0.3, 0.5]


async def test_code_blocks_and_json_are_not_sent_to_the_engine() -> None:
    engine = FakeEngine()
    runner, route = make(rule(roles=("user", "tool"), keep_last_user=False), engine=engine)
    code = "```python\ndef keep_me():\n    return 42\n```"
    doc = {"rows": [{"id": 1, "name": "alpha"}], "total": 1, "note": LONG}
    body, raw = chat(
        {"role": "user", "content": f"{LONG}\n{code}\n{LONG}"},
        {"role": "user", "content": json.dumps(doc)},
    )
    _outcome, sent = await run(runner, route, body, raw)
    first, second = texts(sent)
    assert f"\n{code}\n" in first and len(first) < len(texts(body)[0])
    assert second == json.dumps(doc)
    sent_text = " ".join(c for call in engine.calls for c in call["contexts"])
    assert "keep_me" not in sent_text and "alpha" not in sent_text


async def test_protected_spans_reach_the_engine() -> None:
    engine = FakeEngine()
    runner, route = make(
        rule(roles=("user",), keep_last_user=False, protect=(r"ORD-\d+",), rate=0.2), engine=engine
    )
    text = (
        LONG
        + "Order ORD-99 ships to bob@example.com via https://ship.example/t/abc "
        + "from /srv/data/file.txt "
        + LONG
    )
    body, raw = chat({"role": "user", "content": text})
    _outcome, sent = await run(runner, route, body, raw)
    out = texts(sent)[0]
    for item in ("ORD-99", "bob@example.com", "https://ship.example/t/abc", "/srv/data/file.txt"):
        assert item in out
    call = engine.calls[0]
    assert call["protected_spans"] and call["force_reserve_digit"] is True
    assert call["encoding"] == "o200k_base" and call["mode"] == "faithful"


async def test_ranges_and_target_tokens() -> None:
    ranges = (
        RangeRule(min_tokens=0, max_tokens=60, rate=0.9),
        RangeRule(min_tokens=61, max_tokens=None, target_tokens=40),
    )
    engine = FakeEngine()
    runner, route = make(
        rule(roles=("user",), rate=None, ranges=ranges, keep_last_user=False), engine=engine
    )
    body, raw = chat({"role": "user", "content": PROSE}, {"role": "user", "content": LONG})
    await run(runner, route, body, raw)
    rates = sorted(call["rate"] for call in engine.calls)
    enc = encoding_for_model("gpt-4o")
    long_tokens = len(enc.encode(LONG.strip()))
    assert rates[0] == pytest.approx(40 / len(enc.encode(LONG)), abs=1e-3)
    assert rates[1] == 0.9 and long_tokens > 61


async def test_context_filter_drops_whole_documents() -> None:
    short_doc, long_doc = PROSE, LONG
    text = f"<doc>{short_doc}</doc>\n<doc>{long_doc}</doc>\nQ?"
    runner, route = make(
        rule(
            roles=("user",),
            tags=("doc",),
            keep_last_user=False,
            context_filter=ContextFilter(rate=0.5),
        )
    )
    body, raw = chat({"role": "user", "content": text})
    _outcome, sent = await run(runner, route, body, raw)
    out = texts(sent)[0]
    assert out.count("<doc>") == 1 and out.startswith("\n<doc>") and out.endswith("</doc>\nQ?")


async def test_determinism_and_segment_cache() -> None:
    engine = FakeEngine()
    runner, route = make(rule(roles=("user",), keep_last_user=False), engine=engine)
    body, raw = chat({"role": "user", "content": LONG + "ünïcode ✓"})
    first = await runner.apply(route, UPSTREAM, body, raw, {})
    calls = len(engine.calls)
    second = await runner.apply(route, UPSTREAM, body, raw, {})
    assert first.body == second.body and first.changed
    assert len(engine.calls) == calls and runner.cache.hits >= 1
    assert "✓".encode() in first.body  # ensure_ascii=False


async def test_compression_that_does_not_shrink_is_discarded() -> None:
    class Growing(FakeEngine):
        async def compress(self, context: Any, **kwargs: Any) -> dict[str, Any]:
            return {"compressed_prompt_list": [c + " extra words" for c in context]}

    runner, route = make(rule(roles=("user",), keep_last_user=False), engine=Growing())
    body, raw = chat({"role": "user", "content": LONG})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    assert outcome.body is raw and outcome.status == "none"


async def test_bypass_header() -> None:
    runner, route = make(rule(roles=("user",), keep_last_user=False))
    body, raw = chat({"role": "user", "content": LONG})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {"X-LinguaGate-Bypass": "true"})
    assert outcome.status == "bypassed" and outcome.body is raw
    runner, route = make(rule(roles=("user",), keep_last_user=False), allow_bypass=False)
    outcome = await runner.apply(route, UPSTREAM, body, raw, {"x-linguagate-bypass": "true"})
    assert outcome.status == "applied"


async def test_rate_header_overrides_when_allowed() -> None:
    engine = FakeEngine()
    runner, route = make(
        rule(roles=("user",), keep_last_user=False), engine=engine, allow_rate_header=True
    )
    body, raw = chat({"role": "user", "content": LONG})
    await runner.apply(route, UPSTREAM, body, raw, {"x-linguagate-rate": "0.3"})
    assert engine.calls[-1]["rate"] == 0.3
    runner, route = make(rule(roles=("user",), keep_last_user=False), engine=engine)
    await runner.apply(route, UPSTREAM, body, raw, {"x-linguagate-rate": "0.3"})
    assert engine.calls[-1]["rate"] == 0.5


@pytest.mark.parametrize("on_error", ["fail_open", "fail_closed"])
@pytest.mark.parametrize(
    ("engine", "status"),
    [
        (FakeEngine(delay=5.0), "error:deadline"),
        (FakeEngine(error=RuntimeError("boom")), "error:engine"),
        (FakeEngine(error=EngineBusy("full")), "skipped:engine_busy"),
    ],
)
async def test_failures_fail_open_or_closed(engine: FakeEngine, status: str, on_error: str) -> None:
    runner, route = make(
        rule(roles=("user",), keep_last_user=False),
        engine=engine,
        deadline_ms=50,
        on_error=on_error,
    )
    body, raw = chat({"role": "user", "content": LONG})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    assert outcome.status == status and outcome.body is raw and not outcome.changed
    assert (outcome.reject is not None) is (on_error == "fail_closed")


async def test_missing_model_marks_compression_off(tmp_path: Any) -> None:
    route = RouteConfig(name="r", upstream="up", compress=(rule(roles=("user",)),))
    config = Config(routes=(route,))
    object.__setattr__(config.model, "path", str(tmp_path / "nope"))
    runner = PolicyRunner.from_config(config)
    await runner.start()
    assert not runner.ready and runner.load_error
    body, raw = chat({"role": "user", "content": LONG}, {"role": "user", "content": "q"})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    assert outcome.status == "skipped:no_model" and outcome.body is raw and outcome.reject is None
    await runner.close()
    assert PolicyRunner(Config()).ready  # nothing compresses: ready without a model


async def test_count() -> None:
    runner, _ = make()
    body, _ = chat({"role": "user", "content": "hello world"})
    tokens, enc = await runner.count(UPSTREAM, body)
    assert enc == "o200k_base" and tokens == 2


@pytest.mark.parametrize("value", ["0", "1.5", "fast"])
async def test_invalid_rate_header_is_a_400(value: str) -> None:
    from proxy.errors import ProxyError

    runner, route = make(rule(roles=("user",)), allow_rate_header=True)
    body, raw = chat({"role": "user", "content": LONG})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {"x-linguagate-rate": value})
    assert isinstance(outcome.reject, ProxyError) and outcome.reject.status == 400
    assert (
        outcome.reject.code == "invalid_rate_header" and outcome.status == "error:bad_rate_header"
    )


async def test_fail_closed_reject_is_a_502() -> None:
    from proxy.errors import ProxyError

    runner, route = make(
        rule(roles=("user",), keep_last_user=False),
        engine=FakeEngine(error=RuntimeError("x")),
        on_error="fail_closed",
    )
    body, raw = chat({"role": "user", "content": LONG})
    outcome = await runner.apply(route, UPSTREAM, body, raw, {})
    assert isinstance(outcome.reject, ProxyError) and outcome.reject.status == 502
    assert "error:engine" in outcome.reject.message


def test_kept_documents_matching() -> None:
    from policies.dispatch import kept_documents

    docs = ["a b", "c d", "a b", "e f"]
    assert kept_documents({"compressed_prompt_list": ["c d", "e f"]}, docs) == {1, 3}
    assert kept_documents({"compressed_prompt_list": [" a b ", "a b"]}, docs) == {0, 2}
    assert kept_documents({"compressed_prompt_list": ["x y"]}, docs) == {0, 1, 2, 3}
    assert kept_documents({"compressed_prompt_list": [], "kept_context_ids": [2]}, docs) == {2}


async def test_big_prompts_are_planned_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import policies.policy as policy_module

    monkeypatch.setattr(policy_module, "THREAD_CHARS", 0)
    runner, route = make(rule(roles=("user",), tags=("doc",)))
    body, raw = chat(
        {"role": "user", "content": f"<doc>{LONG}</doc>"}, {"role": "user", "content": LONG}
    )
    outcome, sent = await run(runner, route, body, raw)
    assert outcome.status == "applied" and texts(sent)[1] == LONG
    assert len(texts(sent)[0]) < len(LONG)


async def test_repeated_document_is_compressed_once() -> None:
    engine = FakeEngine()
    runner, route = make(rule(roles=("user",), keep_last_user=False), engine=engine)
    body, raw = chat({"role": "user", "content": LONG}, {"role": "user", "content": LONG})
    _outcome, sent = await run(runner, route, body, raw)
    assert len(engine.calls) == 1 and texts(sent)[0] == texts(sent)[1] != LONG


def _thread_spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Record the thread each call of ``module.name`` runs in."""
    seen: list[int] = []
    real = getattr(module, name)

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(threading.get_ident())
        return real(*args, **kw)

    monkeypatch.setattr(module, name, spy)
    return seen


async def test_big_tool_call_arguments_are_counted_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from policies import policy as policy_module

    seen = _thread_spy(monkeypatch, policy_module, "count_prompt")
    runner, _ = make()
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "x" * 50_000}}
    big = {"model": "gpt-4o", "messages": [{"role": "assistant", "tool_calls": [call]}]}
    small = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    assert (await runner.count(UPSTREAM, big))[0] > 1000
    assert (await runner.count(UPSTREAM, small))[0] == 1
    loop_thread = threading.get_ident()
    assert seen[0] != loop_thread  # 50k characters of arguments: a worker thread
    assert seen[1] == loop_thread  # a few characters: inline, cheaper than a hand-off


async def test_protected_spans_of_a_long_text_are_found_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from policies import dispatch

    seen = _thread_spy(monkeypatch, dispatch, "find_protected")
    runner, route = make(rule(roles=("user",), keep_last_user=False))
    body, raw = chat({"role": "user", "content": PROSE * 200})
    outcome, _ = await run(runner, route, body, raw)
    assert outcome.status == "applied"
    assert seen and all(ident != threading.get_ident() for ident in seen)
