"""Sending a plan's text to the engine: the context filter, then token-level compression.

Every piece is one engine call (the engine micro-batches concurrent calls) and every
result goes through the segment cache, so a document repeated across requests costs
nothing the second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from policies.config import CompressRule
from policies.protect import compile_patterns, find_protected, split_whitespace
from policies.rewrite import DocGroup, Plan, Region, region_text
from policies.segment_cache import SegmentCache, text_digest

PARALLEL_CALLS = 8  # engine calls one request may have in flight


THREAD_CHARS = 20_000  # texts longer than this are planned, counted and scanned in a thread


class Engine(Protocol):
    async def compress(self, context: str | list[str], **kwargs: Any) -> dict[str, Any]: ...


class EngineFailure(Exception):
    """The engine raised or returned something unusable (status error:engine)."""


async def gather_or_cancel(coros: Iterable[Awaitable[None]]) -> None:
    """Run all; on the first failure cancel the rest, so a failed or late request does
    not keep engine queue slots busy after its outcome is decided."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


def _is_busy(exc: BaseException) -> bool:
    return type(exc).__name__ == "EngineBusy"


async def _call(engine: Engine, contexts: list[str], **kwargs: Any) -> dict[str, Any]:
    try:
        result = await engine.compress(contexts, **kwargs)
    except (asyncio.CancelledError, TimeoutError):
        raise
    except Exception as exc:
        if _is_busy(exc):
            raise
        raise EngineFailure(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(result, dict) or not isinstance(result.get("compressed_prompt_list"), list):
        raise EngineFailure("engine returned no compressed_prompt_list")
    return result


def kept_documents(result: dict[str, Any], docs: Sequence[str]) -> set[int]:
    """Indices of the documents the context filter kept.

    Uses the engine's explicit index list when it reports one; otherwise matches the
    returned texts (rate 1.0 keeps kept documents verbatim) in order. When the answer
    is ambiguous every document is kept: dropping the wrong one is worse than none.
    """
    for name in ("kept_context_ids", "context_ids", "kept_contexts"):
        ids = result.get(name)
        if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
            return {i for i in ids if 0 <= i < len(docs)}
    outputs = [o.strip() for o in result["compressed_prompt_list"] if isinstance(o, str)]
    kept: set[int] = set()
    pos = 0
    for output in outputs:
        while pos < len(docs) and docs[pos].strip() != output:
            pos += 1
        if pos == len(docs):
            return set(range(len(docs)))
        kept.add(pos)
        pos += 1
    return kept if kept else set(range(len(docs)))


async def _filter_group(
    engine: Engine, group: DocGroup, rule: CompressRule, messages: Sequence[Any], encoding: str
) -> None:
    filt = rule.context_filter
    if filt is None:
        return
    docs = [region_text(messages, r) for r in group.regions]
    kwargs: dict[str, Any] = {"use_context_level_filter": True, "rate": 1.0}
    if filt.target_tokens is not None:
        kwargs["context_level_target_token"] = filt.target_tokens
    elif filt.rate is not None and filt.rate < 1.0:
        kwargs["context_level_rate"] = filt.rate
    else:
        return
    result = await _call(engine, docs, mode="faithful", encoding=encoding, **kwargs)
    kept = kept_documents(result, docs)
    for index, region in enumerate(group.regions):
        region.dropped = index not in kept


async def filter_documents(
    engine: Engine, plan: Plan, rules: Sequence[CompressRule], messages: Sequence[Any]
) -> None:
    """Drop whole low-value documents (with their tags) before token-level compression."""
    await gather_or_cancel(
        _filter_group(engine, g, rules[g.rule_index], messages, plan.encoding_name)
        for g in plan.doc_groups
    )


@dataclass
class _Job:
    region: Region
    piece: int
    lead: str
    core: str
    trail: str
    key: tuple[str, str, float, bytes]


def rule_fingerprint(rule: CompressRule, encoding: str) -> str:
    return f"{encoding}|{rule!r}"


async def compress_regions(
    engine: Engine,
    cache: SegmentCache,
    plan: Plan,
    rules: Sequence[CompressRule],
    model_id: str,
) -> None:
    """Fill ``region.outputs`` for every region with a rate, from cache or engine."""
    jobs: dict[tuple[str, str, float, bytes], list[_Job]] = {}  # same text once per request
    fingerprints = [rule_fingerprint(r, plan.encoding_name) for r in rules]
    for region in plan.regions:
        if region.dropped or region.rate is None:
            continue
        for index, piece in enumerate(region.pieces):
            if not piece.touchable:
                continue
            lead, core, trail = split_whitespace(piece.text)
            if not core:
                continue
            key = (model_id, fingerprints[region.rule_index], region.rate, text_digest(core))
            cached = cache.get(key)
            if cached is not None:
                region.outputs[index] = lead + cached + trail
            else:
                jobs.setdefault(key, []).append(_Job(region, index, lead, core, trail, key))
    # One engine call per piece: the engine shares one budget across the contexts of a
    # call, so a piece's output must not depend on its neighbours (cache + determinism).
    # The engine micro-batches concurrent calls; the semaphore keeps one request from
    # filling the whole queue.
    limit = asyncio.Semaphore(PARALLEL_CALLS)
    await gather_or_cancel(
        _run_job(engine, cache, rules[same[0].region.rule_index], same, plan.encoding_name, limit)
        for same in jobs.values()
    )


async def _run_job(
    engine: Engine,
    cache: SegmentCache,
    rule: CompressRule,
    same: list[_Job],
    encoding: str,
    limit: asyncio.Semaphore,
) -> None:
    job = same[0]
    assert job.region.rate is not None
    kwargs: dict[str, Any] = {
        "mode": rule.mode,
        "rate": job.region.rate,
        "force_tokens": tuple(rule.force_tokens),
        "force_reserve_digit": rule.keep_digits,
    }
    if rule.mode == "faithful":
        pattern = compile_patterns(tuple(rule.protect), rule.protect_defaults)
        spans = (
            await asyncio.to_thread(find_protected, job.core, pattern, rule.force_tokens)
            if len(job.core) > THREAD_CHARS  # ~0.4 s per MB of regex scanning
            else find_protected(job.core, pattern, rule.force_tokens)
        )
        kwargs["protected_spans"] = [spans]
        kwargs["encoding"] = encoding
    async with limit:
        result = await _call(engine, [job.core], **kwargs)
    outputs = result["compressed_prompt_list"]
    if len(outputs) != 1 or not isinstance(outputs[0], str):
        raise EngineFailure(f"engine returned {len(outputs)} results for 1 text")
    cache.put(job.key, outputs[0])
    for each in same:
        each.region.outputs[each.piece] = each.lead + outputs[0] + each.trail
