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
