"""What the request handlers share: config, router, upstream clients, runner, sink."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from policies.config import Config, RouteConfig
from proxy.accesslog import AccessLog
from proxy.errors import ProxyError
from proxy.forward import Upstream
from proxy.records import NullSink, RequestSink
from proxy.routing import Router


@dataclass
class Gateway:
    config: Config
    router: Router
    runner: Any  # policies.policy.PolicyRunner (imported lazily: it may pull in the engine)
    upstreams: dict[str, Upstream] = field(default_factory=dict)
    sink: RequestSink = field(default_factory=NullSink)
    ledger: Any = None  # proxy.ledger.Ledger when config.ledger.path is set
    access_log: AccessLog = field(default_factory=lambda: AccessLog(False))

    @property
    def max_body(self) -> int:
        return self.config.server.max_body_bytes


def _is_key(value: str | None, keys: tuple[str, ...]) -> bool:
    if not value:
        return False
    return any(hmac.compare_digest(value.encode(), k.encode()) for k in keys)


def check_key(route: RouteConfig, headers: dict[str, str]) -> bool:
    """Enforce ``route.keys``. Returns True when ``Authorization`` carries a proxy key
    (it must then not be forwarded, whichever header authenticated the request);
    raises 401 when a key is required and missing."""
    if not route.keys:
        return False
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    auth_is_key = _is_key(bearer, route.keys)
    if auth_is_key or _is_key(headers.get("x-linguagate-key"), route.keys):
        return auth_is_key
    raise ProxyError(
        401,
        "missing or invalid proxy key (send Authorization: Bearer <key> or x-linguagate-key)",
        code="invalid_proxy_key",
    )
