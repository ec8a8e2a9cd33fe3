"""Plan which regions of a chat body a route's rules compress, then rebuild the body.

Planning is pure CPU work (regex, tiktoken counting) and runs in a worker thread
for big prompts. Rebuilding changes only the ``content`` string or the ``text`` of
selected text parts; every other field, part and message keeps its identity, and
the result is serialised the same way every time (``ensure_ascii=False``, compact
separators, original key order), so identical requests give identical bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import tiktoken

from policies.amounts import effective_rate, pick_amount
from policies.config import CompressRule
from policies.protect import Piece, split_untouchable
from policies.segments import (
    PartKey,
    find_elements,
    last_user_index,
    message_selected,
    part_text,
    text_parts,
    tool_names,
)
from policies.tokens import count_tokens

Edit = tuple[int, int, str]  # (start, end, replacement) in a part's text


@dataclass
class Region:
    """One range of one text part that one rule compresses."""

    key: PartKey
    start: int
    end: int
    rule_index: int
    pieces: list[Piece]
    tokens: int
    rate: float | None  # None: too short or no amount applies; still eligible for dropping
    outputs: dict[int, str] = field(default_factory=dict)  # piece index -> new text
    dropped: bool = False  # removed by the context filter (with its tags)
    element_span: tuple[int, int] | None = None  # whole <tag>...</tag> when tagged


@dataclass
class DocGroup:
    """Several tagged documents in one part: candidates for the context filter."""

    rule_index: int
    regions: list[Region]


@dataclass
class Plan:
    encoding_name: str
    part_tokens: dict[PartKey, int]
    fixed_tokens: int  # tool call arguments: counted, never changed
    regions: list[Region] = field(default_factory=list)
    doc_groups: list[DocGroup] = field(default_factory=list)
    marker_edits: dict[PartKey, list[Edit]] = field(default_factory=dict)

    @property
    def tokens_before(self) -> int:
        return self.fixed_tokens + sum(self.part_tokens.values())


def _fixed_tokens(messages: Sequence[Any], encoding: tiktoken.Encoding) -> int:
    total = 0
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("tool_calls"), list):
            continue
        for call in message["tool_calls"]:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                for key in ("name", "arguments"):
                    if isinstance(function.get(key), str):
                        total += count_tokens(function[key], encoding)
    return total


def count_prompt(messages: Sequence[Any], encoding: tiktoken.Encoding) -> int:
    """Whole-prompt tokens: every message's text plus tool-call names and arguments."""
    total = _fixed_tokens(messages, encoding)
    for message in messages:
        for _, text in text_parts(message):
            total += count_tokens(text, encoding)
    return total


def _region(
    key: PartKey,
    text: str,
    start: int,
    end: int,
    rule_index: int,
    rule: CompressRule,
    encoding: tiktoken.Encoding,
    override_rate: float | None,
    whole_tokens: int | None = None,
) -> Region:
    sub = text[start:end]
    tokens = whole_tokens if whole_tokens is not None else count_tokens(sub, encoding)
    pieces = split_untouchable(sub, rule.skip_code)
    rate: float | None = None
    if tokens >= rule.min_tokens and any(p.touchable for p in pieces):
        touchable = [p for p in pieces if p.touchable]
        if len(touchable) == len(pieces):
            touchable_tokens = tokens
        else:
            touchable_tokens = sum(count_tokens(p.text, encoding) for p in touchable)
        amount = pick_amount(rule, tokens)
        rate = effective_rate(amount, tokens, touchable_tokens, override_rate)
    return Region(key, start, end, rule_index, pieces, tokens, rate)


def build_plan(
    messages: Sequence[Any],
    rules: Sequence[CompressRule],
    encoding: tiktoken.Encoding,
    encoding_name: str,
    override_rate: float | None = None,
) -> Plan:
    """Select regions: each text part is handled by the first rule that selects it."""
    part_tokens: dict[PartKey, int] = {}
    for index, message in enumerate(messages):
        for part_index, text in text_parts(message):
            part_tokens[(index, part_index)] = count_tokens(text, encoding)
    plan = Plan(encoding_name, part_tokens, _fixed_tokens(messages, encoding))
    call_names = tool_names(messages)
    last_user = last_user_index(messages)
    claimed: set[PartKey] = set()
    for rule_index, rule in enumerate(rules):
        for index, message in enumerate(messages):
            if rule.keep_last_user and index == last_user:
                continue
            if not message_selected(message, rule.roles, rule.tools, call_names):
                continue
            for part_index, text in text_parts(message):
                key = (index, part_index)
                if key in claimed:
                    continue
                if not rule.tags:
                    claimed.add(key)
                    if text.strip():
                        region = _region(
                            key,
                            text,
                            0,
                            len(text),
                            rule_index,
                            rule,
                            encoding,
                            override_rate,
                            part_tokens[key],
                        )
                        plan.regions.append(region)
                    continue
                elements = find_elements(text, rule.tags)
                if not elements:
                    continue
                claimed.add(key)
                group: list[Region] = []
                for element in elements:
                    region = _region(
                        key,
                        text,
                        element.inner_start,
                        element.inner_end,
                        rule_index,
                        rule,
                        encoding,
                        override_rate,
                    )
                    region.element_span = (element.start, element.end)
                    plan.regions.append(region)
                    group.append(region)
                    if rule.strip_tags:
                        edits = plan.marker_edits.setdefault(key, [])
                        edits.append((element.start, element.inner_start, ""))
                        edits.append((element.inner_end, element.end, ""))
                filtering = rule.context_filter is not None and len(group) >= 2
                if filtering and sum(r.tokens for r in group) >= rule.min_tokens:
                    plan.doc_groups.append(DocGroup(rule_index, group))
    return plan


def region_text(messages: Sequence[Any], region: Region) -> str:
    return part_text(messages, region.key)[region.start : region.end]


def compressed_region(region: Region) -> str:
    return "".join(region.outputs.get(i, p.text) for i, p in enumerate(region.pieces))


@dataclass
class Rebuilt:
    body: bytes | None  # None: nothing changed
    tokens_after: int
    replaced: int = 0  # regions replaced or dropped


def dumps_body(body: dict[str, Any]) -> bytes:
    """Stable serialisation of a modified body (same input -> same bytes)."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from \ud8xx escapes: keep them escaped
        return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _apply_edits(text: str, edits: list[Edit]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, replacement in sorted(edits):
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def rebuild(body: dict[str, Any], plan: Plan, encoding: tiktoken.Encoding) -> Rebuilt:
    """Apply the plan's results; a region whose output is not smaller is kept as is."""
    messages: list[Any] = body["messages"]
    edits: dict[PartKey, list[Edit]] = {k: list(v) for k, v in plan.marker_edits.items()}
    replaced = 0
    for region in plan.regions:
        if region.dropped and region.element_span is not None:
            start, end = region.element_span
            kept = [e for e in edits.get(region.key, []) if not (start <= e[0] < end)]
            edits[region.key] = [*kept, (start, end, "")]
            replaced += 1
            continue
        if not region.outputs:
            continue
        new = compressed_region(region)
        if count_tokens(new, encoding) >= region.tokens:
            continue  # no saving: keep the original (and its cache-friendly bytes)
        edits.setdefault(region.key, []).append((region.start, region.end, new))
        replaced += 1
    new_parts: dict[PartKey, str] = {}
    for key, part_edits in edits.items():
        if part_edits:
            original = part_text(messages, key)
            updated = _apply_edits(original, part_edits)
            if updated != original:
                new_parts[key] = updated
    if not new_parts:
        return Rebuilt(None, plan.tokens_before)
    new_messages = list(messages)
    for (msg_index, part_index), text in sorted(new_parts.items(), key=lambda kv: kv[0][0]):
        message = dict(new_messages[msg_index])
        if part_index is None:
            message["content"] = text
        else:
            content = list(message["content"])
            content[part_index] = {**content[part_index], "text": text}
            message["content"] = content
        new_messages[msg_index] = message
    new_body = {**body, "messages": new_messages}
    after = plan.tokens_before
    for key, text in new_parts.items():
        after += count_tokens(text, encoding) - plan.part_tokens[key]
    return Rebuilt(dumps_body(new_body), after, replaced)
