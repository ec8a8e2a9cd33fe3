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

from policies.config import RouteConfig


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
