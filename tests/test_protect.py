"""Protected spans, code blocks and JSON bodies (policies/protect.py)."""

from __future__ import annotations

import pytest

from policies.protect import (
    compile_patterns,
    find_protected,
    is_json_body,
    merge_spans,
    split_untouchable,
    split_whitespace,
)


def _protected(text: str, protect: tuple[str, ...] = (), defaults: bool = True) -> list[str]:
    return [text[s:e] for s, e in find_protected(text, compile_patterns(protect, defaults))]


@pytest.mark.parametrize(
    "item",
    [
        "https://example.com/a/b?q=1&r=2",
        "bob.smith+x@mail.acme.io",
        "123e4567-e89b-12d3-a456-426614174000",
        "3f2a9c1d7e",
        "0xDEADBEEF",
        "user_account_id",
        "getUserName",
        "PolicyRunner",
        "/var/log/nginx/access.log",
        "src/policies/policy.py",
        "os.path.join()",
    ],
)
def test_default_patterns_protect_identifiers(item: str) -> None:
    assert item in _protected(f"please keep {item} as it is.")


def test_plain_words_are_not_protected() -> None:
    assert _protected("The quick brown fox jumps over the lazy dog, again and again.") == []


def test_defaults_can_be_switched_off_and_custom_regexes_added() -> None:
    text = "ticket ORD-2024-77 for user_id and getUserName"
    assert _protected(text, defaults=False) == []
    assert _protected(text, (r"ORD-\d+-\d+",), defaults=False) == ["ORD-2024-77"]


def test_literals_and_merging() -> None:
    text = "keep Alpha and alpha and Alpha"
    assert find_protected(text, None, ["Alpha"]) == [(5, 10), (25, 30)]
    assert merge_spans([(5, 8), (0, 3), (2, 4), (8, 9), (7, 7)]) == [(0, 4), (5, 9)]


def test_fenced_code_blocks_are_untouchable() -> None:
    text = "Intro words here.\n```python\ndef f():\n    return 1\n```\nOutro words.\n"
    pieces = split_untouchable(text, skip_code=True)
    assert "".join(p.text for p in pieces) == text
    assert [p.touchable for p in pieces] == [True, False, True]
    assert pieces[1].text == "```python\ndef f():\n    return 1\n```"


def test_unterminated_fence_protects_the_rest() -> None:
    pieces = split_untouchable("text\n~~~\ncode without end", skip_code=True)
    assert [(p.text, p.touchable) for p in pieces] == [
        ("text\n", True),
        ("~~~\ncode without end", False),
    ]


def test_json_bodies_are_untouchable_and_skip_code_off_touches_all() -> None:
    body = ' {"items": [1, 2, 3], "next": null}\n'
    assert is_json_body(body) and is_json_body("[1, 2]")
    assert not is_json_body("{not json}") and not is_json_body('"a string"')
    assert split_untouchable(body, skip_code=True)[0].touchable is False
    assert split_untouchable("```\nx\n```", skip_code=False)[0].touchable is True


def test_split_whitespace() -> None:
    assert split_whitespace("\n  body text \n") == ("\n  ", "body text", " \n")
    assert split_whitespace("  ") == ("  ", "", "")
