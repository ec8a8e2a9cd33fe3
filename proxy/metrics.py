"""Prometheus metrics for the proxy, fed from finished RequestRecords.

Each app gets its own ``CollectorRegistry`` so several proxies (tests, or
multiple apps in one process) never collide on metric names. The ledger calls
:meth:`ProxyMetrics.observe` from ``Ledger.record`` on the event loop: a few
lock-protected counter increments, no I/O.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from proxy.records import RequestRecord

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip


class ProxyMetrics:
    """All LinguaGate metrics on one private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "linguagate_requests",
            "Chat completion requests by route, HTTP status and compression status",
            ["route", "status", "compression"],
            registry=r,
        )
        self.compressions = Counter(
            "linguagate_compression_status",
            "Chat requests by compression status (applied, none, bypassed, skipped:*, error:*)",
            ["route", "compression"],
            registry=r,
        )
        self.tokens_before = Counter(
            "linguagate_tokens_before",
            "Prompt tokens before compression (whole prompt, target model's tokenizer)",
            ["route"],
            registry=r,
        )
        self.tokens_after = Counter(
            "linguagate_tokens_after",
            "Prompt tokens sent upstream (whole prompt, target model's tokenizer)",
            ["route"],
            registry=r,
        )
        self.tokens_saved = Counter(
            "linguagate_tokens_saved",
            "tokens_before - tokens_after",
            ["route"],
            registry=r,
        )
        self.provider_prompt_tokens = Counter(
            "linguagate_provider_prompt_tokens",
            "Prompt tokens reported by the provider's usage",
            ["route"],
            registry=r,
        )
        self.compression_seconds = Histogram(
            "linguagate_compression_seconds",
            "Time spent compressing a request",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead_seconds = Histogram(
            "linguagate_overhead_seconds",
            "Proxy time before the upstream request was sent",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_ttfb_seconds = Histogram(
            "linguagate_upstream_ttfb_seconds",
            "Upstream time to first byte",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_seconds = Histogram(
            "linguagate_request_seconds",
            "Total request time as seen by the proxy",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ledger_written = Counter(
            "linguagate_ledger_written", "Records written to the ledger", registry=r
        )
        self.ledger_dropped = Counter(
            "linguagate_ledger_dropped",
            "Records dropped (queue full or write failure)",
            ["reason"],
            registry=r,
        )
        self.ledger_queue = Gauge(
            "linguagate_ledger_queue_depth", "Records waiting for the ledger writer", registry=r
        )
        self.cost_saved = Counter(
            "linguagate_cost_saved_usd",
            "Estimated USD saved at list input price",
            ["route"],
            registry=r,
        )

    def observe(self, rec: RequestRecord) -> None:
        """Account one finished request (called on the event loop; cheap)."""
        route = rec.route or ""
        self.requests.labels(route, str(rec.status), rec.compression).inc()
        self.compressions.labels(route, rec.compression).inc()
        if rec.tokens_before is not None:
            after = rec.tokens_before if rec.tokens_after is None else rec.tokens_after
            self.tokens_before.labels(route).inc(rec.tokens_before)
            self.tokens_after.labels(route).inc(after)
            self.tokens_saved.labels(route).inc(max(rec.tokens_before - after, 0))
        if rec.prompt_tokens is not None:
            self.provider_prompt_tokens.labels(route).inc(rec.prompt_tokens)
        _observe_ms(self.compression_seconds, route, rec.compression_ms)
        _observe_ms(self.overhead_seconds, route, rec.overhead_ms)
        _observe_ms(self.upstream_ttfb_seconds, route, rec.upstream_ttfb_ms)
        _observe_ms(self.request_seconds, route, rec.total_ms)

    def render(self) -> bytes:
        """Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


def _observe_ms(hist: Histogram, route: str, ms: float | None) -> None:
    if ms is not None and ms >= 0:
        hist.labels(route).observe(ms / 1000.0)
