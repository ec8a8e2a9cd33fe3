"""Typed readers for one YAML mapping that record problems instead of raising.

:class:`Checker` converts and range-checks values and remembers which keys were
read, so unread ones can be reported as unknown; :class:`Context` attaches the
YAML line of the nearest enclosing node to every problem. Values that came from
env expansion (:class:`EnvStr`) may be parsed as numbers or booleans.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from policies.config_yaml import EnvStr, Problem, join

_MISSING: Any = object()


class Checker:
    """Reads one mapping section, converting and checking values, noting problems."""

    def __init__(self, ctx: Context, data: Any, path: str) -> None:
        self.ctx = ctx
        self.path = path
        self.seen: set[str] = set()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            ctx.problem(path, f"must be a mapping, got {kind(data)}")
            data = {}
        self.data: dict[str, Any] = data

    def _get(self, key: str, required: bool) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.ctx.problem(self.path, f"missing required key '{key}'")
            return _MISSING
        return self.data[key]

    def string(
        self,
        key: str,
        default: Any = None,
        *,
        required: bool = False,
        choices: tuple[str, ...] = (),
        nullable: bool = False,
    ) -> Any:
        value = self._get(key, required)
        if value is _MISSING or (value is None and nullable):
            return default if value is _MISSING else None
        if isinstance(value, bool | int | float) and not choices:
            value = _scalar_text(value)
        if not isinstance(value, str):
            return self._bad(key, "a string", value, default)
        value = str(value)
        if choices and value not in choices:
            self.ctx.problem(
                join(self.path, key), f"must be one of {', '.join(choices)}, got {value!r}"
            )
            return default
        return value

    def num(
        self,
        key: str,
        default: Any,
        *,
        integer: bool = False,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
        nullable: bool = False,
    ) -> Any:
        value = self._get(key, False)
        if value is _MISSING or (value is None and nullable):
            return default if value is _MISSING else None
        if isinstance(value, EnvStr):
            with contextlib.suppress(ValueError):
                value = int(value) if integer else float(value)
        kind = "an integer" if integer else "a number"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (integer and not isinstance(value, int))
        ):
            return self._bad(key, kind, value, default)
        path = join(self.path, key)
        if lo is not None and (value <= lo if lo_open else value < lo):
            self.ctx.problem(path, f"must be {'>' if lo_open else '>='} {lo:g}, got {value}")
            return default
        if hi is not None and value > hi:
            self.ctx.problem(path, f"must be <= {hi:g}, got {value}")
            return default
        return value if integer else float(value)

    def rate(self, key: str) -> float | None:
        value = self.num(key, None, lo=0.0, lo_open=True, hi=1.0, nullable=True)
        return None if value is None else float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if isinstance(value, EnvStr) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            return bool(self._bad(key, "true or false", value, default))
        return value

    def str_list(
        self, key: str, default: tuple[str, ...] = (), choices: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        value = self._get(key, False)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return tuple(self._bad(key, "a list of strings", value, default))
        out: list[str] = []
        for i, item in enumerate(value):
            path = join(join(self.path, key), i)
            if isinstance(item, bool | int | float):
                item = _scalar_text(item)
            if not isinstance(item, str):
                self.ctx.problem(path, f"must be a string, got {kind(item)}")
            elif choices and item not in choices:
                self.ctx.problem(path, f"must be one of {', '.join(choices)}, got {item!r}")
            else:
                out.append(str(item))
        return tuple(out)

    def str_map(self, key: str, lower_keys: bool = False) -> dict[str, str]:
        value = self._get(key, False)
        if value is _MISSING or value is None:
            return {}
        if not isinstance(value, dict):
            return dict(self._bad(key, "a mapping of strings", value, {}))
        out: dict[str, str] = {}
        for name, item in value.items():
            if isinstance(item, bool | int | float):
                item = _scalar_text(item)
            if not isinstance(item, str):
                self.ctx.problem(
                    join(join(self.path, key), name), f"must be a string, got {kind(item)}"
                )
                continue
            out[name.lower() if lower_keys else name] = str(item)
        return out

    def raw(self, key: str) -> Any:
        value = self._get(key, False)
        return None if value is _MISSING else value

    def _bad(self, key: str, expected: str, value: Any, default: Any) -> Any:
        self.ctx.problem(join(self.path, key), f"must be {expected}, got {kind(value)}")
        return default

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.ctx.problem(join(self.path, key), f"unknown key '{key}'")


class Context:
    def __init__(self, lines: dict[str, int], problems: list[Problem]) -> None:
        self.lines = lines
        self.problems = problems

    def problem(self, path: str, message: str) -> None:
        line = self.lines.get(path)
        probe = path
        while line is None and probe:  # fall back to the nearest enclosing node
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
            probe = "" if parent == probe else parent
            line = self.lines.get(probe)
        self.problems.append(Problem(path or "<root>", line, message))

    def section(self, data: Any, path: str) -> Checker:
        return Checker(self, data, path)


def _scalar_text(value: bool | int | float) -> str:
    """A YAML scalar given where text is expected (``port: 80`` in a header map)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def kind(value: Any) -> str:
    if value is None:
        return "null"
    for kind, text in _KINDS:
        if isinstance(value, kind):
            return text
    return type(value).__name__


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a mapping"),
)
