"""A small, real, deterministic stand-in for the engine used by the policy unit tests.

It drops words by a fixed pattern (keeping about ``rate`` of them), honours
``protected_spans`` and ``force_reserve_digit``, and implements a context filter
that keeps the longest documents. Calls are recorded for assertions.
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

_WORD = re.compile(r"\S+")


def drop_words(text: str, rate: float, spans: list[tuple[int, int]], digits: bool) -> str:
    kept: list[str] = []
    for i, match in enumerate(_WORD.finditer(text)):
        start, end = match.span()
        protected = any(s < end and start < e for s, e in spans)
        if digits and any(ch.isdigit() for ch in match.group()):
            protected = True
        if protected or math.floor((i + 1) * rate) > math.floor(i * rate):
            kept.append(match.group())
    return " ".join(kept)


class FakeEngine:
    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay = delay
        self.error = error
        self.calls: list[dict[str, Any]] = []
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def compress(self, context: str | list[str], **kwargs: Any) -> dict[str, Any]:
        contexts = [context] if isinstance(context, str) else list(context)
        self.calls.append({"contexts": contexts, **kwargs})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if kwargs.get("use_context_level_filter"):
            rate = kwargs.get("context_level_rate", 1.0)
            keep_n = max(1, math.ceil(rate * len(contexts)))
            order = sorted(range(len(contexts)), key=lambda i: (-len(contexts[i]), i))
            keep = sorted(order[:keep_n])
            return {"compressed_prompt_list": [contexts[i] for i in keep]}
        spans = kwargs.get("protected_spans") or [[] for _ in contexts]
        outputs = [
            drop_words(c, kwargs["rate"], list(s), kwargs.get("force_reserve_digit", False))
            for c, s in zip(contexts, spans, strict=True)
        ]
        return {"compressed_prompt": "\n\n".join(outputs), "compressed_prompt_list": outputs}


class EngineBusy(Exception):
    """Same name as the engine's queue-full error (the runner matches it by name)."""
