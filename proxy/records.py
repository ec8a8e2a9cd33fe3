"""What the proxy knows about one chat request once it is over.

The request handler fills a :class:`RequestRecord` and hands it to a
:class:`RequestSink` (the savings ledger, metrics). Keeping this a plain data
class lets the hot path stay ignorant of SQLite and Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class RequestRecord:
    request_id: str
    started_at: float  # unix time, seconds
    route: str
    upstream: str
    model: str | None = None
    stream: bool = False
    status: int = 0  # HTTP status returned to the client (0 = client went away)
    # "applied", "none", "bypassed", "skipped:<reason>", "error:<kind>"
    compression: str = "none"
    tokens_before: int | None = None  # whole prompt, target model's tokenizer
    tokens_after: int | None = None
    encoding: str | None = None  # tiktoken encoding that counted them
    prompt_tokens: int | None = None  # provider usage
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    compression_ms: float | None = None
    overhead_ms: float | None = None  # proxy time before the upstream request was sent
    upstream_ttfb_ms: float | None = None
    total_ms: float | None = None
    error: str | None = None  # short error kind, never a message with user data
    prompt_before: str | None = None  # only when the ledger is configured to store prompts
    prompt_after: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


class RequestSink(Protocol):
    def record(self, record: RequestRecord) -> None:
        """Accept a finished record. Must not block: called on the event loop."""


class NullSink:
    """Sink used when no ledger is configured."""

    def record(self, record: RequestRecord) -> None:
        return None
