"""Selecting messages, tool outputs and tagged elements (policies/segments.py)."""

from __future__ import annotations

from policies.segments import (
    find_elements,
    last_user_index,
    message_selected,
    text_parts,
    tool_names,
)

MESSAGES = [
    {"role": "system", "content": "sys"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "and this"},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "sql", "arguments": "{}"}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "search results"},
    {"role": "tool", "tool_call_id": "c2", "content": "rows"},
    {"role": "user", "content": "question"},
]


def test_text_parts_skip_non_text_parts() -> None:
    assert list(text_parts(MESSAGES[1])) == [(0, "look"), (2, "and this")]
    assert list(text_parts(MESSAGES[2])) == []
    assert list(text_parts({"role": "user", "content": [{"type": "text", "text": 3}]})) == []


def test_tool_outputs_are_selected_by_tool_name() -> None:
    names = tool_names(MESSAGES)
    assert names == {"c1": "search", "c2": "sql"}
    picked = [i for i, m in enumerate(MESSAGES) if message_selected(m, (), ("search",), names)]
    assert picked == [3]
    picked = [
        i for i, m in enumerate(MESSAGES) if message_selected(m, ("system",), ("sql",), names)
    ]
    assert picked == [0, 4]
    assert all(message_selected(m, (), (), names) for m in MESSAGES)


def test_last_user_index() -> None:
    assert last_user_index(MESSAGES) == 5
    assert last_user_index(MESSAGES[:1]) is None


def test_find_elements_with_attributes_and_nesting() -> None:
    text = 'a <doc id="3">one</doc> b <DOC>two</doc > <doc><doc>in</doc></doc> <docs>x</docs>'
    elements = find_elements(text, ["doc"])
    inner = [text[e.inner_start : e.inner_end] for e in elements]
    assert inner == ["one", "two", "<doc>in"]
    assert text[elements[0].start : elements[0].end] == '<doc id="3">one</doc>'


def test_find_elements_several_tags_in_text_order() -> None:
    text = "<ctx>c</ctx><doc>d</doc>"
    assert [e.tag for e in find_elements(text, ["doc", "ctx"])] == ["ctx", "doc"]
