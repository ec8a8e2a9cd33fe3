"""Route matching: longest prefix first, then model globs, then headers."""

from __future__ import annotations

from policies.config import load_config_text
from proxy.routing import Router

CONFIG = """
upstreams: {up: {base_url: "http://x/v1"}}
routes:
  - {name: root, prefix: /, upstream: up}
  - {name: rag-4o, prefix: /rag/, upstream: up, models: ["gpt-4o*"]}
  - {name: rag-acme, prefix: /rag, upstream: up, headers: {X-Tenant: acme}}
  - {name: rag, prefix: /rag, upstream: up}
  - {name: deep, prefix: /rag/deep, upstream: up}
"""


def router() -> Router:
    return Router(load_config_text(CONFIG, env={}).routes)


def name(path, headers=None, model=None, chat=True):
    match = router().match(path, headers or {}, model, check_model=chat)
    return None if match is None else (match.route.name, match.rest)


def test_longest_prefix_first_regardless_of_order():
    assert name("/rag/deep/v1/chat/completions") == ("deep", "/v1/chat/completions")
    assert name("/v1/chat/completions") == ("root", "/v1/chat/completions")


def test_model_glob_then_headers_then_fallthrough():
    assert name("/rag/v1/chat/completions", model="gpt-4o-mini")[0] == "rag-4o"
    assert name("/rag/v1/chat/completions", {"x-tenant": "acme"}, "o3")[0] == "rag-acme"
    assert name("/rag/v1/chat/completions", {"x-tenant": "other"}, "o3")[0] == "rag"


def test_models_ignored_for_passthrough():
    assert name("/rag/v1/models", chat=False)[0] == "rag-4o"


def test_prefix_is_a_path_segment():
    # "/ragged" is not under "/rag"; the root route only takes /v1 paths
    assert name("/ragged/v1/chat/completions") is None
    assert name("/rag") is None
    assert name("/healthz") is None
    assert router().rest_of("/rag/v1") == "/v1"


def test_encoded_rest_keeps_the_clients_encoding():
    from proxy.routing import encoded_rest

    cases = [
        ("/v1/files/a/b", b"/v1/files/a%2Fb", "/v1/files/a/b", "/v1/files/a%2Fb"),
        ("/rag/v1/m/a?x=1", b"/rag/v1/m/a%3Fx=1", "/v1/m/a?x=1", "/v1/m/a%3Fx=1"),
        ("/rag/v1/m/x", b"/r%61g/v1/m/x", "/v1/m/x", "/v1/m/x"),  # prefix sent encoded
        ("/é/v1/m", b"/%C3%A9/v1/m", "/v1/m", "/v1/m"),
        ("/v1/files/café", b"/v1/files/caf%c3%a9", "/v1/files/café", "/v1/files/caf%c3%a9"),
    ]
    for path, raw, rest, want in cases:
        assert encoded_rest(path, raw, rest) == want, (path, raw)
    # No (or inconsistent) raw_path: the decoded rest is re-encoded, never injected.
    assert encoded_rest("/v1/m/a?x=1#f", None, "/v1/m/a?x=1#f") == "/v1/m/a%3Fx=1%23f"
    assert encoded_rest("/v1/a/b", b"/v1/other", "/v1/a/b") == "/v1/a/b"
    assert encoded_rest("/v1/100%", None, "/v1/100%") == "/v1/100%25"


def test_check_path_rejects_dot_segments_and_control_characters():
    import pytest

    from proxy.errors import ProxyError
    from proxy.routing import check_path

    for ok in ["/v1/models", "/v1/files/a.b", "/v1/files/..x", "/rag/v1/f/caf\u00e9"]:
        check_path(ok)
    for bad in ["/v1/files/../../admin", "/v1/./models", "/v1/..", "/v1/a\\..\\b", "/v1/a\x00b"]:
        with pytest.raises(ProxyError) as info:
            check_path(bad)
        assert (info.value.status, info.value.code) == (400, "invalid_path")
    with pytest.raises(ProxyError):
        check_path("/v1/models/a\nb")


def test_upstream_url_encodes_decoded_paths_and_maps_invalid_urls_to_400():
    import asyncio

    import pytest

    from policies.config import UpstreamConfig
    from proxy.errors import ProxyError
    from proxy.forward import Upstream

    upstream = Upstream.create(UpstreamConfig(name="u", base_url="http://h/base/v1"))
    try:
        assert upstream.url("/v1/m/a?x=1", b"").raw_path == b"/base/v1/m/a%3Fx=1"
        assert upstream.url("/v1/m/a%3F", b"", encoded=True).raw_path == b"/base/v1/m/a%3F"
        assert upstream.url("/v1/m", b"q=1#x").raw_path == b"/base/v1/m?q=1%23x"
        with pytest.raises(ProxyError) as info:
            upstream.url("/v1/m", b"q=\x01", encoded=True)
        assert (info.value.status, info.value.code) == (400, "invalid_path")
    finally:
        asyncio.run(upstream.aclose())
