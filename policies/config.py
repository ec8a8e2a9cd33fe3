"""LinguaGate configuration: frozen dataclasses built from YAML, validated up front.

Everything is checked once at load time (the hot path never re-validates) and all
problems are collected, each with its YAML path and line, so one ``check-config``
run shows everything that is wrong. Unknown keys are errors: a typo must not
silently switch compression off. The schema is documented in docs/design.md.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from policies.config_check import Checker, Context, kind
from policies.config_yaml import Problem, join, parse_yaml

__all__ = [
    "CompressRule",
    "Config",
    "ConfigError",
    "ContextFilter",
    "LedgerConfig",
    "ModelConfig",
    "PriceEntry",
    "Problem",
    "RangeRule",
    "RouteConfig",
    "ServerConfig",
    "UpstreamConfig",
    "default_config",
    "load_config",
    "load_config_text",
    "resolve_config",
]

ROLES = ("system", "user", "assistant", "tool", "developer")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8400
    max_body_mb: float = 32.0
    access_log: bool = True
    log_level: str = "info"

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


@dataclass(frozen=True)
class ModelConfig:
    path: str = "default"
    device: str = "auto"  # auto | cpu | cuda
    variant: str | None = None  # fp32 | fp16 | int8; None = by device
    threads: int = 0
    queue_size: int = 64
    batch_window_ms: float = 2.0
    max_batch_tokens: int = 16384


@dataclass(frozen=True)
class UpstreamConfig:
    name: str
    base_url: str
    api_key: str | None = None  # None: the client's Authorization is passed through
    # With an api_key: True = the client's own Authorization wins when it sends one
    # (api_key is only the fallback); False = api_key always replaces it.
    prefer_client_key: bool = False
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)
    stream_usage: bool = True
    tokenizer: str | None = None
    max_connections: int = 200


@dataclass(frozen=True)
class RangeRule:
    min_tokens: int = 0
    max_tokens: int | None = None  # None = unbounded
    rate: float | None = None
    target_tokens: int | None = None


@dataclass(frozen=True)
class ContextFilter:
    rate: float | None = None
    target_tokens: int | None = None


@dataclass(frozen=True)
class CompressRule:
    roles: tuple[str, ...] = ("user", "tool")
    tools: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    strip_tags: bool = False
    rate: float | None = None
    target_tokens: int | None = None
    ranges: tuple[RangeRule, ...] = ()
    min_tokens: int = 300
    force_tokens: tuple[str, ...] = ()
    keep_digits: bool = True
    protect: tuple[str, ...] = ()
    protect_defaults: bool = True
    skip_code: bool = True
    keep_last_user: bool = True
    context_filter: ContextFilter | None = None
    mode: str = "faithful"  # faithful | reference


@dataclass(frozen=True)
class RouteConfig:
    name: str
    upstream: str
    prefix: str = "/"
    models: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    keys: tuple[str, ...] = ()
    allow_bypass: bool = True
    allow_rate_header: bool = False
    deadline_ms: float = 2000.0
    on_error: str = "fail_open"  # fail_open | fail_closed
    compress: tuple[CompressRule, ...] = ()

    def matches_model(self, model: str | None) -> bool:
        if not self.models:
            return True
        return model is not None and any(fnmatch.fnmatchcase(model, g) for g in self.models)


@dataclass(frozen=True)
class LedgerConfig:
    path: str | None = "linguagate.sqlite"
    store_prompts: bool = False
    batch_size: int = 200
    flush_interval_ms: float = 500.0


@dataclass(frozen=True)
class PriceEntry:
    model: str  # glob
    input: float  # USD per 1M tokens
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    upstreams: dict[str, UpstreamConfig] = field(default_factory=dict)
    routes: tuple[RouteConfig, ...] = ()
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    prices: tuple[PriceEntry, ...] = ()
    source: str = "<string>"

    @property
    def compresses(self) -> bool:
        """True when any route has compression rules (the engine must be loaded)."""
        return any(route.compress for route in self.routes)


# --------------------------------------------------------------------------- parsing


def _amount(
    ctx: Context, sec: Checker, options: str, ranges: bool = False
) -> tuple[float | None, int | None]:
    """rate / target_tokens (and for rules, ranges): exactly one must be given."""
    rate = sec.rate("rate")
    target = sec.num("target_tokens", None, integer=True, lo=1, nullable=True)
    given = sum(sec.data.get(k) is not None for k in ("rate", "target_tokens"))
    if ranges:
        given += sec.data.get("ranges") not in (None, [])
    if given != 1 and isinstance(sec.data, dict):
        ctx.problem(sec.path, f"give exactly one of {options}")
    return rate, target


def _server(ctx: Context, data: Any) -> ServerConfig:
    s = ctx.section(data, "server")
    cfg = ServerConfig(
        host=s.string("host", "127.0.0.1"),
        port=s.num("port", 8400, integer=True, lo=0, hi=65535),
        max_body_mb=s.num("max_body_mb", 32.0, lo=0, lo_open=True),
        access_log=s.flag("access_log", True),
        log_level=s.string("log_level", "info", choices=LOG_LEVELS),
    )
    s.finish()
    return cfg


def _model(ctx: Context, data: Any) -> ModelConfig:
    s = ctx.section(data, "model")
    cfg = ModelConfig(
        path=s.string("path", "default"),
        device=s.string("device", "auto", choices=("auto", "cpu", "cuda")),
        variant=s.string("variant", None, choices=("fp32", "fp16", "int8"), nullable=True),
        threads=s.num("threads", 0, integer=True, lo=0),
        queue_size=s.num("queue_size", 64, integer=True, lo=1),
        batch_window_ms=s.num("batch_window_ms", 2.0, lo=0),
        max_batch_tokens=s.num("max_batch_tokens", 16384, integer=True, lo=1),
    )
    s.finish()
    return cfg


def _upstream(ctx: Context, name: str, data: Any) -> UpstreamConfig:
    s = ctx.section(data, join("upstreams", name))
    base_url = s.string("base_url", "", required=True)
    if base_url and not re.match(r"^https?://[^/\s]+", base_url):
        ctx.problem(
            join(s.path, "base_url"), f"must be an http:// or https:// URL, got {base_url!r}"
        )
    cfg = UpstreamConfig(
        name=name,
        base_url=base_url.rstrip("/"),
        api_key=s.string("api_key", None, nullable=True) or None,
        prefer_client_key=s.flag("prefer_client_key", False),
        timeout_s=s.num("timeout_s", 600.0, lo=0, lo_open=True),
        connect_timeout_s=s.num("connect_timeout_s", 10.0, lo=0, lo_open=True),
        headers=s.str_map("headers"),
        stream_usage=s.flag("stream_usage", True),
        tokenizer=s.string("tokenizer", None, nullable=True) or None,
        max_connections=s.num("max_connections", 200, integer=True, lo=1),
    )
    s.finish()
    return cfg


def _range(ctx: Context, data: Any, path: str) -> RangeRule:
    s = ctx.section(data, path)
    lo = s.num("min_tokens", 0, integer=True, lo=0)
    hi = s.num("max_tokens", None, integer=True, lo=1, nullable=True)
    rate, target = _amount(ctx, s, "rate, target_tokens")
    if hi is not None and hi <= lo:
        ctx.problem(join(path, "max_tokens"), f"must be greater than min_tokens ({lo})")
    s.finish()
    return RangeRule(min_tokens=lo, max_tokens=hi, rate=rate, target_tokens=target)


def _rule(ctx: Context, data: Any, path: str) -> CompressRule:
    s = ctx.section(data, path)
    rate, target = _amount(ctx, s, "rate, target_tokens, ranges", ranges=True)
    ranges_raw = s.raw("ranges") or []
    if not isinstance(ranges_raw, list):
        ctx.problem(join(path, "ranges"), f"must be a list, got {kind(ranges_raw)}")
        ranges_raw = []
    ranges = tuple(_range(ctx, r, join(join(path, "ranges"), i)) for i, r in enumerate(ranges_raw))
    protect = s.str_list("protect")
    for i, pattern in enumerate(protect):
        try:
            re.compile(pattern)
        except re.error as exc:
            ctx.problem(join(join(path, "protect"), i), f"invalid regular expression: {exc}")
    cf_raw = s.raw("context_filter")
    context_filter = None
    if cf_raw is not None:
        cf = ctx.section(cf_raw, join(path, "context_filter"))
        cf_rate, cf_target = _amount(ctx, cf, "rate, target_tokens")
        cf.finish()
        context_filter = ContextFilter(rate=cf_rate, target_tokens=cf_target)
    tags = s.str_list("tags")
    for i, tag in enumerate(tags):
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", tag):
            ctx.problem(
                join(join(path, "tags"), i), f"not a valid tag name: {tag!r} (use doc, not <doc>)"
            )
    rule = CompressRule(
        roles=s.str_list("roles", ("user", "tool"), choices=ROLES),
        tools=s.str_list("tools"),
        tags=tags,
        strip_tags=s.flag("strip_tags", False),
        rate=rate,
        target_tokens=target,
        ranges=ranges,
        min_tokens=s.num("min_tokens", 300, integer=True, lo=0),
        force_tokens=s.str_list("force_tokens"),
        keep_digits=s.flag("keep_digits", True),
        protect=protect,
        protect_defaults=s.flag("protect_defaults", True),
        skip_code=s.flag("skip_code", True),
        keep_last_user=s.flag("keep_last_user", True),
        context_filter=context_filter,
        mode=s.string("mode", "faithful", choices=("faithful", "reference")),
    )
    s.finish()
    return rule


def _route(ctx: Context, data: Any, index: int, upstreams: Mapping[str, Any]) -> RouteConfig:
    path = join("routes", index)
    s = ctx.section(data, path)
    name = s.string("name", f"route{index}")
    upstream = s.string("upstream", "", required=len(upstreams) != 1)
    if not upstream and len(upstreams) == 1:
        upstream = next(iter(upstreams))
    elif upstream and upstream not in upstreams:
        known = ", ".join(sorted(upstreams)) or "none defined"
        ctx.problem(join(path, "upstream"), f"unknown upstream {upstream!r} (known: {known})")
    prefix = s.string("prefix", "/")
    if not prefix.startswith("/"):
        ctx.problem(join(path, "prefix"), f"must start with '/', got {prefix!r}")
    elif any(c in prefix for c in "?#* \t"):
        ctx.problem(join(path, "prefix"), f"must be a plain path, got {prefix!r}")
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else "/"
    compress_raw = s.raw("compress") or []
    if not isinstance(compress_raw, list):
        ctx.problem(join(path, "compress"), f"must be a list of rules, got {kind(compress_raw)}")
        compress_raw = []
    rules = tuple(
        _rule(ctx, r, join(join(path, "compress"), i)) for i, r in enumerate(compress_raw)
    )
    keys = s.str_list("keys")
    for i, key in enumerate(keys):
        if not key:
            ctx.problem(join(join(path, "keys"), i), "proxy key must not be empty")
    route = RouteConfig(
        name=name,
        upstream=upstream,
        prefix=prefix,
        models=s.str_list("models"),
        headers=s.str_map("headers", lower_keys=True),
        keys=tuple(k for k in keys if k),
        allow_bypass=s.flag("allow_bypass", True),
        allow_rate_header=s.flag("allow_rate_header", False),
        deadline_ms=s.num("deadline_ms", 2000.0, lo=0, lo_open=True),
        on_error=s.string("on_error", "fail_open", choices=("fail_open", "fail_closed")),
        compress=rules,
    )
    s.finish()
    return route


def _price(ctx: Context, data: Any, index: int) -> PriceEntry:
    s = ctx.section(data, join("prices", index))
    entry = PriceEntry(
        model=s.string("model", "*", required=True),
        input=s.num("input", 0.0, lo=0),
        output=s.num("output", 0.0, lo=0),
        cached_input=s.num("cached_input", None, lo=0, nullable=True),
    )
    for key in ("input", "output"):
        if key not in s.data:
            ctx.problem(s.path, f"missing required key '{key}'")
    s.finish()
    return entry


def _ledger(ctx: Context, data: Any) -> LedgerConfig:
    s = ctx.section(data, "ledger")
    cfg = LedgerConfig(
        path=s.string("path", "linguagate.sqlite", nullable=True) or None,
        store_prompts=s.flag("store_prompts", False),
        batch_size=s.num("batch_size", 200, integer=True, lo=1),
        flush_interval_ms=s.num("flush_interval_ms", 500.0, lo=0, lo_open=True),
    )
    s.finish()
    return cfg


def _build(ctx: Context, data: Any, source: str) -> Config:
    top = ctx.section(data, "")
    server = _server(ctx, top.raw("server"))
    model = _model(ctx, top.raw("model"))
    upstreams: dict[str, UpstreamConfig] = {}
    ups_raw = top.raw("upstreams")
    if not isinstance(ups_raw, dict) or not ups_raw:
        ctx.problem("upstreams", "at least one upstream is required (name -> {base_url: ...})")
        ups_raw = {} if not isinstance(ups_raw, dict) else ups_raw
    for name, value in ups_raw.items():
        upstreams[name] = _upstream(ctx, name, value)
    routes_raw = top.raw("routes")
    if not isinstance(routes_raw, list) or not routes_raw:
        ctx.problem("routes", "at least one route is required (a list)")
        routes_raw = []
    routes = tuple(_route(ctx, r, i, upstreams) for i, r in enumerate(routes_raw))
    seen: dict[str, int] = {}
    for i, route in enumerate(routes):
        if route.name in seen:
            ctx.problem(join(join("routes", i), "name"), f"duplicate route name {route.name!r}")
        seen.setdefault(route.name, i)
    prices_raw = top.raw("prices") or []
    if not isinstance(prices_raw, list):
        ctx.problem("prices", f"must be a list, got {kind(prices_raw)}")
        prices_raw = []
    prices = tuple(_price(ctx, p, i) for i, p in enumerate(prices_raw))
    ledger = _ledger(ctx, top.raw("ledger"))
    top.finish()
    return Config(server, model, upstreams, routes, ledger, prices, source)


# --------------------------------------------------------------------------- entry points


def load_config_text(
    text: str, source: str = "<string>", env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate YAML text; raise :class:`ConfigError` listing every problem."""
    data, lines, problems = parse_yaml(text, source, env)
    if problems and data is None:
        raise ConfigError(problems)
    ctx = Context(lines, problems)
    config = _build(ctx, data, source)
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise ConfigError(problems)
    return config


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([Problem(str(path), None, f"cannot read config: {reason}")]) from exc
    return load_config_text(text, str(path), env)


def default_config_text() -> str:
    return resources.files("policies").joinpath("default_config.yaml").read_text("utf-8")


def default_config(env: Mapping[str, str] | None = None) -> Config:
    """The embedded default configuration (``linguagate serve`` with no config)."""
    return load_config_text(default_config_text(), "<embedded default>", env)


def resolve_config(path: str | os.PathLike[str] | None = None) -> Config:
    """``--config`` flag, then ``LINGUAGATE_CONFIG``, then the embedded default."""
    chosen = path or os.environ.get("LINGUAGATE_CONFIG")
    return load_config(chosen) if chosen else default_config()
