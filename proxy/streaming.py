"""SSE relay helpers: find the usage event, drop it when only the proxy asked for it.

Upstream chunks are relayed as they arrive. The scanner looks at complete events
only (it keeps the bytes of an unfinished event between chunks), so UTF-8
sequences and line endings split across chunks are handled, and it works on the
raw bytes: events are forwarded byte for byte, never re-serialised. When the
proxy injected ``stream_options.include_usage`` the client did not ask for, the
usage-only chunk (empty ``choices`` plus ``usage``) is removed again.
"""

from __future__ import annotations

import json
import re
from typing import Any

_BOUNDARY = re.compile(rb"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))")  # a blank line
_LINE = re.compile(rb"\r\n|\r|\n")
_USAGE_NULL = re.compile(rb'"usage"\s*:\s*null')
_STREAM_OPTIONS = b'"stream_options":{"include_usage":true},'


def client_wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def inject_usage(raw: bytes, body: dict[str, Any]) -> bytes:
    """``raw`` (the bytes about to go upstream) with ``stream_options.include_usage: true``.

    When the body has no ``stream_options`` the key is inserted right after the
    opening brace, leaving every other byte as it was; otherwise ``raw`` itself is
    re-parsed and re-serialised (never the client's original ``body``: ``raw`` may
    already be the compressed request).
    """
    if "stream_options" not in body:
        start = raw.find(b"{")
        if start >= 0:
            rest = raw[start + 1 :].lstrip()
            sep = b"" if rest.startswith(b"}") else b","
            insert = _STREAM_OPTIONS if sep else _STREAM_OPTIONS[:-1]
            return raw[: start + 1] + insert + raw[start + 1 :]
    patched = json.loads(raw)
    options = patched.get("stream_options")
    patched["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    return json.dumps(patched, ensure_ascii=False, separators=(",", ":")).encode()


def usage_numbers(usage: Any) -> tuple[int | None, int | None, int | None]:
    """(prompt_tokens, cached_tokens, completion_tokens) from an OpenAI ``usage`` object."""
    if not isinstance(usage, dict):
        return None, None, None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return (
        _int(usage.get("prompt_tokens")),
        _int(cached),
        _int(usage.get("completion_tokens")),
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from_json(data: bytes) -> Any:
    """``usage`` of a non-streaming JSON response, or None."""
    if b'"usage"' not in data:
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed.get("usage") if isinstance(parsed, dict) else None


class SSEScanner:
    """Incremental SSE scanner. ``feed`` returns the bytes to relay now."""

    def __init__(self, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self.usage: Any = None
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        end = _last_boundary(data)
        if end < 0:
            self._pending = data
            return chunk if not self.strip_usage else b""
        complete, self._pending = data[:end], data[end:]
        if b'"usage"' not in complete:
            return chunk if not self.strip_usage else complete
        relayed = self._scan(complete)
        return chunk if not self.strip_usage else relayed

    def finish(self) -> bytes:
        """Bytes still held back at the end of the stream (an unterminated event)."""
        rest, self._pending = self._pending, b""
        if rest and b'"usage"' in rest:
            relayed = self._scan(rest)
            return relayed if self.strip_usage else b""
        return rest if self.strip_usage else b""

    def _scan(self, complete: bytes) -> bytes:
        out: list[bytes] = []
        pos = 0
        for match in _BOUNDARY.finditer(complete):
            event = complete[pos : match.end()]
            pos = match.end()
            if not self._drop(event):
                out.append(event)
        if pos < len(complete):
            tail = complete[pos:]
            if not self._drop(tail):
                out.append(tail)
        return b"".join(out)

    def _drop(self, event: bytes) -> bool:
        """Record usage from ``event``; True if it is the usage-only chunk to drop."""
        if b'"usage"' not in event or _USAGE_NULL.search(event) is not None:
            return False
        payload = b"\n".join(
            line[5:].removeprefix(b" ") for line in _LINE.split(event) if line.startswith(b"data:")
        )
        try:
            parsed = json.loads(payload)
        except ValueError:
            return False
        if not isinstance(parsed, dict) or not isinstance(parsed.get("usage"), dict):
            return False
        self.usage = parsed["usage"]
        return self.strip_usage and parsed.get("choices") == []


def _last_boundary(data: bytes) -> int:
    """End offset of the last complete event in ``data`` (after its blank line), or -1."""
    if b"\r" not in data:  # the common case: "\n" line endings only
        idx = data.rfind(b"\n\n")
        return -1 if idx < 0 else idx + 2
    last = -1
    for found in _BOUNDARY.finditer(data):
        last = found.end()
    return last
