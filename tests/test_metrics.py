"""Prometheus metrics: fed from records, private registries, parseable exposition."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from proxy.metrics import ProxyMetrics
from tests.ledger_support import make_record


def _samples(m: ProxyMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_from_records_parse() -> None:
    m = ProxyMetrics()
    m.observe(make_record(route="rag", tokens_before=1000, tokens_after=400, prompt_tokens=410))
    m.observe(make_record(route="rag", compression="none", tokens_before=500, tokens_after=None))
    m.observe(
        make_record(
            route="rag",
            status=502,
            compression="error:timeout",
            tokens_before=None,
            compression_ms=None,
            upstream_ttfb_ms=None,
        )
    )
    s = _samples(m)
    route = (("route", "rag"),)
    assert (
        s[
            (
                "linguagate_requests_total",
                (("compression", "applied"), ("route", "rag"), ("status", "200")),
            )
        ]
        == 1
    )
    assert (
        s[
            (
                "linguagate_requests_total",
                (("compression", "error:timeout"), ("route", "rag"), ("status", "502")),
            )
        ]
        == 1
    )
    assert (
        s[("linguagate_compression_status_total", (("compression", "none"), ("route", "rag")))] == 1
    )
    assert s[("linguagate_tokens_before_total", route)] == 1500
    assert s[("linguagate_tokens_after_total", route)] == 900
    assert s[("linguagate_tokens_saved_total", route)] == 600
    assert s[("linguagate_provider_prompt_tokens_total", route)] == 3 * 410
    assert s[("linguagate_compression_seconds_count", route)] == 2
    assert s[("linguagate_upstream_ttfb_seconds_count", route)] == 2
    assert s[("linguagate_request_seconds_count", route)] == 3
    assert s[("linguagate_compression_seconds_sum", route)] == 0.024
    assert s[("linguagate_ledger_queue_depth", ())] == 0


def test_registries_are_private() -> None:
    a, b = ProxyMetrics(), ProxyMetrics()  # same names, no "Duplicated timeseries" error
    a.observe(make_record())
    assert ("linguagate_tokens_saved_total", (("route", "rag"),)) in _samples(a)
    assert ("linguagate_tokens_saved_total", (("route", "rag"),)) not in _samples(b)
