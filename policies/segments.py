"""Finding the text a rule targets inside a chat request, without touching anything else.

A chat body is a list of messages whose ``content`` is a string or a list of
parts. Only ``type: text`` parts (and string content) are text; images, audio,
files, ``tool_calls``, names and every other field are never selected. A
*region* is a character range of one text part: the whole text, or the inside of
one ``<tag ...>...</tag>`` element.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# (message index, part index or None for string content)
PartKey = tuple[int, int | None]


@dataclass(frozen=True)
class Element:
    """One ``<tag attrs>inner</tag>`` occurrence; offsets into the part's text."""

    tag: str
    start: int  # start of the opening marker
    end: int  # end of the closing marker
    inner_start: int
    inner_end: int


def text_parts(message: Any) -> Iterator[tuple[int | None, str]]:
    """(part index or None, text) for every text part of a message."""
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, str):
        yield None, content
    elif isinstance(content, list):
        for index, part in enumerate(content):
            if (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                yield index, part["text"]


def part_text(messages: Sequence[Any], key: PartKey) -> str:
    msg_index, part_index = key
    content = messages[msg_index]["content"]
    return content if part_index is None else content[part_index]["text"]


def tool_names(messages: Sequence[Any]) -> dict[str, str]:
    """tool_call_id -> function name, from the assistants' ``tool_calls``."""
    names: dict[str, str] = {}
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("tool_calls"), list):
            continue
        for call in message["tool_calls"]:
            if not isinstance(call, dict):
                continue
            function = call.get("function")
            if isinstance(call.get("id"), str) and isinstance(function, dict):
                name = function.get("name")
                if isinstance(name, str):
                    names[call["id"]] = name
    return names


def last_user_index(messages: Sequence[Any]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            return index
    return None


def message_selected(
    message: Any, roles: Sequence[str], tools: Sequence[str], call_names: dict[str, str]
) -> bool:
    """A message is selected by its role, or (role tool) by the name of the tool that
    produced it. A rule naming neither roles nor tools selects every message."""
    if not isinstance(message, dict):
        return False
    role = message.get("role")
    if not roles and not tools:
        return True
    if role in roles:
        return True
    if not tools:
        return False
    if role == "tool":
        call_id = message.get("tool_call_id")
        return isinstance(call_id, str) and call_names.get(call_id) in tools
    if role == "function":  # legacy function-calling results carry the name directly
        return message.get("name") in tools
    return False


@functools.lru_cache(maxsize=256)
def _tag_pattern(tag: str) -> re.Pattern[str]:
    name = re.escape(tag)
    return re.compile(rf"<{name}(?:\s[^<>]*)?>(.*?)</{name}\s*>", re.DOTALL | re.IGNORECASE)


def find_elements(text: str, tags: Sequence[str]) -> list[Element]:
    """Non-overlapping tagged elements in text order (the first tag listed wins ties)."""
    found: list[Element] = []
    for tag in tags:
        for match in _tag_pattern(tag).finditer(text):
            found.append(Element(tag, match.start(), match.end(), match.start(1), match.end(1)))
    found.sort(key=lambda e: (e.start, -e.end))
    result: list[Element] = []
    for element in found:
        if result and element.start < result[-1].end:
            continue  # nested or overlapping: the outer element already covers it
        result.append(element)
    return result
