"""Route matching: path prefix, then model glob, then exact request headers.

Routes are tried **longest prefix first** (config order among equal prefixes), so
``/rag`` wins over ``/`` whatever the order in the file. A route matches a path
when the path is ``{prefix}/v1`` or below; the rest (``/v1/...``) is what gets
forwarded. Pass-through requests (anything but chat completions) are not parsed,
so the ``models`` filter only applies to chat completions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from policies.config import RouteConfig
from proxy.errors import ProxyError

# Characters kept as they are when a decoded path is re-encoded for the upstream
# (RFC 3986 pchar minus "%", plus "/"); everything else, "?" and "#" included, is
# percent-encoded, so a decoded path can never inject a query or a fragment.
PATH_SAFE = "/:@!$&'()*+,;="


@dataclass(frozen=True, slots=True)
class Match:
    route: RouteConfig
    rest: str  # the path below the prefix, starting with "/v1"


class Router:
    def __init__(self, routes: Sequence[RouteConfig]) -> None:
        ordered = sorted(enumerate(routes), key=lambda item: (-len(item[1].prefix), item[0]))
        self._routes = [route for _, route in ordered]
        self.needs_headers = any(route.headers for route in routes)

    @property
    def routes(self) -> list[RouteConfig]:
        return list(self._routes)

    def rest_of(self, path: str) -> str | None:
        """``/v1/...`` below the first matching prefix, if any route's prefix applies."""
        for route in self._routes:
            rest = _strip(route.prefix, path)
            if rest is not None:
                return rest
        return None

    def match(
        self,
        path: str,
        headers: Mapping[str, str],
        model: str | None = None,
        check_model: bool = False,
    ) -> Match | None:
        for route in self._routes:
            rest = _strip(route.prefix, path)
            if rest is None:
                continue
            if check_model and route.models and not route.matches_model(model):
                continue
            if route.headers and any(headers.get(k) != v for k, v in route.headers.items()):
                continue
            return Match(route, rest)
        return None


def _strip(prefix: str, path: str) -> str | None:
    if prefix != "/":
        if not path.startswith(prefix):
            return None
        path = path[len(prefix) :]
    if path.startswith("/v1/") or path == "/v1":
        return path
    return None


def check_path(path: str) -> None:
    """400 ``invalid_path`` for a decoded path with control characters or dot segments.

    Dot segments (``.``/``..``, however the client encoded them: ``%2e%2e``) would let
    a request climb out of the upstream's base path once the upstream (or something
    in front of it) normalises the URL, still carrying the configured API key.
    """
    if not path.isprintable() and any(c < " " or c == "\x7f" for c in path):
        raise ProxyError(400, "request path contains control characters", code="invalid_path")
    if "." in path:
        for segment in path.replace("\\", "/").split("/"):
            if segment in (".", ".."):
                raise ProxyError(400, "request path contains dot segments", code="invalid_path")


def encoded_rest(path: str, raw_path: bytes | None, rest: str) -> str:
    """``rest`` (a decoded suffix of ``path``) as the client percent-encoded it.

    Routing works on the decoded ``scope["path"]``; the upstream must get the
    client's own encoding (``a%2Fb`` stays one segment, ``%3F`` stays in the path).
    Taken byte for byte from ``scope["raw_path"]`` when that is consistent with
    ``path``; otherwise ``rest`` is re-encoded, which is equally safe.
    """
    if raw_path is not None and rest.startswith("/v1") and path.endswith(rest):
        raw = raw_path.decode("latin-1")
        head = path[: len(path) - len(rest)]
        cut = _raw_cut(raw, head)
        if cut is not None:
            tail = raw[cut:]
            if (tail == "/v1" or tail.startswith("/v1/")) and unquote(tail) == rest:
                if "?" in tail or "#" in tail:  # never in a real raw_path; be safe
                    tail = tail.replace("?", "%3F").replace("#", "%23")
                return tail
    return quote(rest, safe=PATH_SAFE)


def _raw_cut(raw: str, head: str) -> int | None:
    """Index in ``raw`` where the part decoding to ``head`` ends, if there is one."""
    n = len(head)
    if raw[:n] == head and "%" not in head:
        return n  # the usual case: the prefix was sent unencoded
    i = 0
    while i <= len(raw):
        decoded = unquote(raw[:i])
        if decoded == head:
            return i
        if len(decoded) > n + 3:
            return None
        i += 3 if raw[i : i + 1] == "%" else 1
    return None
