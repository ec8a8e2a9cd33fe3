"""Config loading: schema, every validation rule with path + line, env expansion."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from policies.config import (
    ConfigError,
    default_config,
    load_config,
    load_config_text,
    resolve_config,
)

REPO = Path(__file__).resolve().parent.parent
BASE = """\
upstreams:
  up: {base_url: "http://127.0.0.1:9/v1"}
routes:
  - name: r
    upstream: up
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), env=env or {})
    return [str(p) for p in info.value.problems]


def test_minimal_config_defaults():
    config = load_config_text(BASE, env={})
    assert config.server.port == 8400 and config.server.host == "127.0.0.1"
    route = config.routes[0]
    assert (route.prefix, route.on_error, route.compress) == ("/", "fail_open", ())
    assert config.upstreams["up"].timeout_s == 600
    assert config.ledger.path == "linguagate.sqlite"
    assert not config.compresses


def test_full_example_passes():
    config = load_config(REPO / "config.example.yaml", env={})
    assert [r.name for r in config.routes] == ["rag", "agent", "raw", "default"]
    rule = config.routes[0].compress[0]
    assert rule.rate == 0.5 and rule.tags == ("doc",) and rule.roles == ("user", "tool")
    assert config.routes[0].compress[1].ranges[1].target_tokens == 1200
    assert config.prices[0].cached_input == 0.075
    assert config.compresses


def test_default_config():
    config = default_config(env={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8400)
    (route,) = config.routes
    assert route.prefix == "/" and route.allow_bypass and route.on_error == "fail_open"
    (rule,) = route.compress  # conservative: long user/tool texts, last user message intact
    assert rule.roles == ("user", "tool") and rule.rate == 0.6 and rule.min_tokens == 800
    assert rule.keep_last_user and rule.keep_digits and rule.protect_defaults and rule.skip_code
    assert config.model.path == "default" and config.compresses
    upstream = config.upstreams[route.upstream]
    assert upstream.base_url == "https://api.openai.com/v1"
    assert upstream.api_key is None and upstream.prefer_client_key
    assert config.ledger.path == "./linguagate.sqlite"
    assert default_config(env={"OPENAI_API_KEY": "sk-x"}).upstreams["openai"].api_key == "sk-x"


def test_resolve_order(tmp_path, monkeypatch):
    flag = tmp_path / "flag.yaml"
    flag.write_text(BASE + "server: {port: 1111}\n")
    env_file = tmp_path / "env.yaml"
    env_file.write_text(BASE + "server: {port: 2222}\n")
    monkeypatch.setenv("LINGUAGATE_CONFIG", str(env_file))
    assert resolve_config(flag).server.port == 1111
    assert resolve_config(None).server.port == 2222
    monkeypatch.delenv("LINGUAGATE_CONFIG")
    assert resolve_config(None).server.port == 8400


def test_collects_all_problems_with_lines():
    found = problems(
        """\
        server:
          port: 70000
          bogus: 1
        upstreams:
          up: {base_url: "http://x"}
        routes:
          - name: r
            upstream: up
            prefix: rag
        """
    )
    assert found == [
        "server.port (line 2): must be <= 65535, got 70000",
        "server.bogus (line 3): unknown key 'bogus'",
        "routes[0].prefix (line 9): must start with '/', got 'rag'",
    ]


RULES = [
    ("unknown top-level key", "extra: 1\n", "extra (line 6): unknown key 'extra'"),
    ("unknown route key", "    prefx: /a\n", "routes[0].prefx (line 6): unknown key"),
    ("port type", "server: {port: abc}\n", "server.port (line 6): must be an integer"),
    ("max_body_mb > 0", "server: {max_body_mb: 0}\n", "server.max_body_mb (line 6): must be > 0"),
    ("log level", "server: {log_level: loud}\n", "server.log_level (line 6): must be one of"),
    ("device", "model: {device: tpu}\n", "model.device (line 6): must be one of auto, cpu, cuda"),
    ("variant", "model: {variant: fp8}\n", "model.variant (line 6): must be one of"),
    ("threads", "model: {threads: -1}\n", "model.threads (line 6): must be >= 0"),
    ("queue", "model: {queue_size: 0}\n", "model.queue_size (line 6): must be >= 1"),
    ("on_error", "    on_error: explode\n", "routes[0].on_error (line 6): must be one of"),
    ("prefix", "    prefix: v1\n", "routes[0].prefix (line 6): must start with '/'"),
    ("keys type", "    keys: {a: 1}\n", "routes[0].keys (line 6): must be a list of strings"),
    ("deadline", "    deadline_ms: 0\n", "routes[0].deadline_ms (line 6): must be > 0"),
    ("bool", "    allow_bypass: maybe\n", "routes[0].allow_bypass (line 6): must be true or false"),
    ("ledger", "ledger: {batch_size: 0}\n", "ledger.batch_size (line 6): must be >= 1"),
    ("prices", "prices: [{model: x, input: 1}]\n", "prices[0] (line 6): missing required key"),
    ("price >= 0", "prices: [{model: x, input: -1, output: 1}]\n", "prices[0].input (line 6)"),
]


@pytest.mark.parametrize(("name", "extra", "expected"), RULES, ids=[r[0] for r in RULES])
def test_validation_rule(name, extra, expected):
    found = problems(BASE + extra)
    assert any(p.startswith(expected) for p in found), found


def test_unknown_upstream_reference():
    found = problems(BASE.replace("upstream: up", "upstream: nope"))
    assert found == ["routes[0].upstream (line 5): unknown upstream 'nope' (known: up)"]


def test_upstream_checks():
    found = problems(
        """\
        upstreams:
          up:
            base_url: ftp://x
            timeout_s: -1
            max_connections: 0
          other: {timeout_s: 1}
        routes: [{upstream: up}]
        """
    )
    url_problem = (
        "upstreams.up.base_url (line 3): must be an http:// or https:// URL, got 'ftp://x'"
    )
    assert url_problem in found
    assert "upstreams.up.timeout_s (line 4): must be > 0, got -1" in found
    assert "upstreams.up.max_connections (line 5): must be >= 1, got 0" in found
    assert "upstreams.other (line 6): missing required key 'base_url'" in found


def test_missing_sections():
    found = problems("server: {}\n")
    assert any(p.startswith("upstreams") for p in found)
    assert any(p.startswith("routes") for p in found)


def test_duplicate_route_names_and_keys():
    found = problems(BASE + "  - {name: r, upstream: up}\nserver: {port: 1}\nserver: {port: 2}\n")
    assert "routes[1].name (line 6): duplicate route name 'r'" in found
    assert "server (line 8): duplicate key" in found


def rule_problems(rule: str) -> list[str]:
    return problems(BASE + "    compress:\n" + textwrap.indent(textwrap.dedent(rule), "      "))


def test_rule_rate_range():
    assert rule_problems("- rate: 1.5\n") == [
        "routes[0].compress[0].rate (line 7): must be <= 1, got 1.5"
    ]
    zero = rule_problems("- rate: 0\n")
    assert zero == ["routes[0].compress[0].rate (line 7): must be > 0, got 0"]


@pytest.mark.parametrize(
    "rule",
    [
        "- {roles: [user]}\n",
        "- {rate: 0.5, target_tokens: 100}\n",
        "- {rate: 0.5, ranges: [{min_tokens: 0, rate: 0.5}]}\n",
    ],
)
def test_rule_exactly_one_amount(rule):
    assert rule_problems(rule) == [
        "routes[0].compress[0] (line 7): give exactly one of rate, target_tokens, ranges"
    ]


def test_rule_field_checks():
    found = rule_problems(
        """\
        - rate: 0.5
          roles: [robot]
          mode: lossy
          protect: ["("]
          min_tokens: -5
          tags: ["<doc>"]
          target_tokens: null
          context_filter: {rate: 0.7, target_tokens: 5}
          unknown_option: 1
        - ranges:
            - {min_tokens: 100, max_tokens: 50, rate: 0.5}
            - {min_tokens: 0}
        """
    )
    expected_prefixes = [
        "routes[0].compress[0].roles[0] (line 8): must be one of system, user",
        "routes[0].compress[0].mode (line 9): must be one of faithful, reference",
        "routes[0].compress[0].protect[0] (line 10): invalid regular expression",
        "routes[0].compress[0].min_tokens (line 11): must be >= 0",
        "routes[0].compress[0].tags[0] (line 12): not a valid tag name",
        "routes[0].compress[0].context_filter (line 14): give exactly one of rate, target_tokens",
        "routes[0].compress[0].unknown_option (line 15): unknown key",
        "routes[0].compress[1].ranges[0].max_tokens (line 17): must be greater than min_tokens",
        "routes[0].compress[1].ranges[1] (line 18): give exactly one of rate, target_tokens",
    ]
    for prefix in expected_prefixes:
        assert any(p.startswith(prefix) for p in found), (prefix, found)
    assert len(found) == len(expected_prefixes)


def test_yaml_syntax_error_has_line():
    found = problems("server:\n  port: [1,\n")
    assert len(found) == 1 and "invalid YAML" in found[0] and "(line" in found[0]


def test_env_expansion():
    text = """\
    server:
      host: ${HOST:-0.0.0.0}
      port: ${PORT}
      access_log: ${LOG:-false}
    upstreams:
      up:
        base_url: ${SCHEME:-http}://${UPHOST}/v1
        api_key: os.environ/KEY
        timeout_s: ${TIMEOUT:-12.5}
        headers: {x-cost: "$${NOT_A_VAR}"}
    routes: [{upstream: up, keys: ["${PROXY_KEY}"]}]
    """
    env = {"PORT": "9000", "UPHOST": "example.com", "KEY": "sk-1", "PROXY_KEY": "pk"}
    config = load_config_text(textwrap.dedent(text), env=env)
    assert config.server.host == "0.0.0.0" and config.server.port == 9000
    assert config.server.access_log is False
    up = config.upstreams["up"]
    assert up.base_url == "http://example.com/v1" and up.api_key == "sk-1" and up.timeout_s == 12.5
    assert up.headers == {"x-cost": "${NOT_A_VAR}"}
    assert config.routes[0].keys == ("pk",)


def test_env_missing_variable_reported_with_path():
    text = BASE.replace('"http://127.0.0.1:9/v1"', '"${UP_URL}"')
    found = problems(text + "server: {port: os.environ/P}\n")
    assert "upstreams.up.base_url (line 2): environment variable UP_URL is not set" in found
    assert "server.port (line 6): environment variable P is not set" in found


def test_env_value_cannot_inject_yaml():
    env = {"KEY": "x}\nrouters: [oops]\nserver: {port: 1", "PORT": "[1, 2]"}
    config = load_config_text(BASE.replace("}", ", api_key: '${KEY}'}", 1), env=env)
    assert config.upstreams["up"].api_key == env["KEY"]
    assert problems(BASE + "server: {port: '${PORT}'}\n", env=env) == [
        "server.port (line 6): must be an integer, got a string"
    ]


def test_check_config_cli(tmp_path, capsys):
    from proxy.cli import main

    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{good}: ok (1 routes, 0 compressing, 1 upstreams)"
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "server: {port: x, nope: 1}\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "server.port (line 6): must be an integer, got a string",
        "server.nope (line 6): unknown key 'nope'",
        f"{bad}: 2 problems",
    ]
    assert main(["check-config", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read config" in capsys.readouterr().err


def test_example_config_passes_check_config(capsys):
    from proxy.cli import main

    assert main(["check-config", str(REPO / "config.example.yaml")]) == 0
