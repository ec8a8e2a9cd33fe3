"""YAML loading that remembers where every value came from, plus env expansion.

Validation errors are only useful when they point at a line, so instead of
``yaml.safe_load`` we compose the node tree and build plain Python values while
recording the line of every path (``routes[1].compress[0].rate``). Environment
variables are expanded *after* parsing, on string scalars only, so a variable's
value can never inject YAML structure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_WHOLE_ENV = re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class Problem:
    """One configuration problem: where (YAML path and line) and what."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}"


class EnvStr(str):
    """A string produced by env expansion; numeric/bool fields may parse it."""


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def expand_env(
    value: str, env: Mapping[str, str], path: str, line: int | None, problems: list[Problem]
) -> str:
    """Expand ``os.environ/VAR`` (whole value), ``${VAR}``, ``${VAR:-default}``, ``$$``."""
    whole = _WHOLE_ENV.match(value)
    if whole:
        name = whole.group(1)
        if name not in env:
            problems.append(Problem(path, line, f"environment variable {name} is not set"))
            return ""
        return EnvStr(env[name])
    if "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        problems.append(Problem(path, line, f"environment variable {name} is not set"))
        return ""

    expanded = _ENV_REF.sub(substitute, value)
    return EnvStr(expanded) if expanded != value else value


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, env: Mapping[str, str]) -> None:
        self.loader = loader
        self.env = env
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: str) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # supports "<<: *anchor"
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                key_line = key_node.start_mark.line + 1
                if not isinstance(key, str):
                    self.problems.append(
                        Problem(path or "<root>", key_line, f"key {key!r} is not a string")
                    )
                    continue
                child = join(path, key)
                if key in result:
                    self.problems.append(Problem(child, key_line, "duplicate key"))
                    continue
                self.lines[child] = key_line
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, join(path, i)) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str):
            return expand_env(value, self.env, path or "<root>", line, self.problems)
        return value


def parse_yaml(
    text: str, source: str, env: Mapping[str, str] | None = None
) -> tuple[Any, dict[str, int], list[Problem]]:
    """Parse ``text``; return (data, path -> line, problems). Syntax errors are problems."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        builder = _Builder(loader, os.environ if env is None else env)
        data = builder.build(node, "")
        return data, builder.lines, builder.problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return None, {}, [Problem(source, line, f"invalid YAML: {message}")]
    except yaml.YAMLError as exc:
        return None, {}, [Problem(source, None, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
