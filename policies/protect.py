"""What compression must never touch: protected spans, code blocks and JSON bodies.

LLMLingua-style compressors mangle identifiers, URLs and JSON (gateway lessons,
pain point 16). Two mechanisms keep them intact:

* *protected spans* are character ranges inside text that goes to the engine; the
  engine keeps every word overlapping them (``protected_spans`` in faithful mode);
* *untouchable pieces* (fenced code blocks, whole JSON bodies) are cut out of the
  text before it reaches the engine and glued back afterwards, byte for byte.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Span = tuple[int, int]

# Defaults for ``protect_defaults: true``. Each is deliberately narrow: a false
# positive only costs a little compression, a false negative corrupts data.
DEFAULT_PATTERNS: dict[str, str] = {
    "url": r"\b(?:[a-zA-Z][a-zA-Z0-9+.-]*)://[^\s<>\"'`]+",
    "email": r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b",
    "uuid": r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    "hex_id": r"\b(?:0x[0-9a-fA-F]+|(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,})\b",
    "snake_case": r"\b[A-Za-z_][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b",
    "camel_case": r"\b[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+\b",
    "pascal_case": r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b",
    "dotted_name": r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\(\)?",
    "unix_path": r"(?<![\w/])(?:~|\.{1,2})?(?:/[\w.@%+-]+){2,}/?",
    "relative_path": r"\b(?:[\w.-]+/)+[\w-]+\.[A-Za-z0-9]{1,8}\b",
    "inline_code": r"`[^`\n]+`",
    "windows_path": r"\b[A-Za-z]:\\(?:[\w. -]+\\)*[\w. -]*",
}

# A fenced block: an opening fence line, anything, a closing line with the same fence.
_FENCE = re.compile(
    r"^[ \t]*(?P<f>`{3,}|~{3,})[^\n]*$.*?^[ \t]*(?P=f)[ \t]*$"  # block
    r"|`{3}[^`\n]+`{3}"  # ```inline``` on one line
    r"|^[ \t]*(?:`{3,}|~{3,}).*\Z",  # unterminated: protect to the end
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Piece:
    """A stretch of text; ``touchable`` pieces may be compressed, the rest are kept."""

    text: str
    touchable: bool


@functools.lru_cache(maxsize=256)
def compile_patterns(protect: tuple[str, ...], defaults: bool) -> re.Pattern[str] | None:
    """One alternation of the user's regexes (and the defaults); cached per rule."""
    sources = list(protect)
    if defaults:
        sources.extend(DEFAULT_PATTERNS.values())
    if not sources:
        return None
    return re.compile("|".join(f"(?:{s})" for s in sources))


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sort and merge overlapping or touching spans."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def find_protected(
    text: str, pattern: re.Pattern[str] | None, literals: Sequence[str] = ()
) -> list[Span]:
    """Character spans of ``text`` the engine must keep (regex matches and literals)."""
    spans: list[Span] = []
    if pattern is not None:
        spans.extend(m.span() for m in pattern.finditer(text) if m.end() > m.start())
    for literal in literals:
        if not literal or literal.isspace():
            continue
        start = text.find(literal)
        while start >= 0:
            spans.append((start, start + len(literal)))
            start = text.find(literal, start + len(literal))
    return merge_spans(spans)


def is_json_body(text: str) -> bool:
    """True when the whole text is a JSON object or array (tool outputs often are)."""
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] not in "[{":
        return False
    try:
        value = json.loads(stripped)
    except ValueError:
        return False
    return isinstance(value, (dict, list))


def split_untouchable(text: str, skip_code: bool) -> list[Piece]:
    """Split ``text`` into touchable prose and untouchable fenced code blocks.

    An unterminated fence protects everything after it (better safe than
    compressing half a program). With ``skip_code`` off the whole text is touchable.
    """
    if not skip_code:
        return [Piece(text, True)]
    if is_json_body(text):
        return [Piece(text, False)]
    pieces: list[Piece] = []
    pos = 0
    for match in _FENCE.finditer(text):
        if match.start() > pos:
            pieces.append(Piece(text[pos : match.start()], True))
        pieces.append(Piece(match.group(0), False))
        pos = match.end()
    if pos < len(text):
        pieces.append(Piece(text[pos:], True))
    return pieces


def split_whitespace(text: str) -> tuple[str, str, str]:
    """(leading whitespace, core, trailing whitespace): the engine only sees the core,
    so newlines around code fences and tags survive compression."""
    core = text.strip()
    if not core:
        return text, "", ""
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    return lead, core, trail
