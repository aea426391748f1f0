"""YAML input files with line numbers, for errors that say file, line and field.

:func:`load_yaml` returns plain dicts, lists and scalars, but every mapping is a :class:`YMap` and
every list a :class:`YList` that remember the line of each key and item. A :class:`Field` walks
such a tree and raises :class:`InputError` ("file:line: path.to.field: message") for anything
wrong: a missing or unknown key (with a suggestion), a wrong type, a bad quantity.
Schedules, scenarios and station files all read their YAML through here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from licycler import units
from licycler.errors import UserError

__all__ = ["Field", "InputError", "YList", "YMap", "load_yaml", "load_yaml_text"]


class InputError(UserError):
    """A mistake in an input file, located by file, line and field path."""

    def __init__(self, source: str, line: int | None, path: str, message: str) -> None:
        self.source, self.line, self.path, self.detail = source, line, path, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {path + ': ' if path else ''}{message}")


class YMap(dict[str, Any]):
    """A mapping that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class YList(list[Any]):
    """A list that knows its own line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so ``on:``, ``off``, ``yes``, ``no`` stay text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> YMap:
    result = YMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in result:
            raise InputError(
                loader.name, key_node.start_mark.line + 1, key, f"duplicate key (first on line {result.key_lines[key]})"
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> YList:
    result = YList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_text(text: str, source: str = "<string>") -> Any:
    """Parse YAML text; syntax errors become an :class:`InputError` with the line."""
    loader = _Loader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise InputError(source, line, "", f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(source, None, "", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> tuple[Any, str]:
    """Read and parse a YAML file; returns (data, text). A missing file is an :class:`InputError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(p), None, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(p), None, "", f"cannot read the file: {exc}") from None
    return load_yaml_text(text, str(p)), text


class Field:
    """A value in a YAML tree with its location, and typed accessors that fail with a located error."""

    def __init__(self, value: Any, source: str, path: str = "", line: int | None = None) -> None:
        self.value = value
        self.source = source
        self.path = path
        self.line = line if line is not None else getattr(value, "line", None)

    def error(self, message: str) -> InputError:
        return InputError(self.source, self.line, self.path, message)

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    # --- structure --------------------------------------------------------------------------
    def mapping(self, allowed: tuple[str, ...] | None = None, required: tuple[str, ...] = ()) -> Field:
        """Check this is a mapping with only ``allowed`` keys and all ``required`` ones."""
        if not isinstance(self.value, dict):
            raise self.error(f"expected a mapping of keys, got {_kind(self.value)}")
        if allowed is not None:
            for key in self.value:
                if key not in allowed:
                    hint = difflib.get_close_matches(key, allowed, n=1)
                    also = f" (did you mean '{hint[0]}'?)" if hint else f" (expected one of: {', '.join(allowed)})"
                    raise InputError(self.source, self._key_line(key), self._child_path(key), "unknown key" + also)
        for key in required:
            if key not in self.value:
                raise self.error(f"missing required key '{key}'")
        return self

    def _key_line(self, key: str) -> int | None:
        lines = getattr(self.value, "key_lines", None)
        return lines.get(key, self.line) if lines else self.line

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def get(self, key: str) -> Field | None:
        """The child field ``key``, or None when absent (or null)."""
        if not isinstance(self.value, dict) or self.value.get(key) is None:
            return None
        return Field(self.value[key], self.source, self._child_path(key), self._key_line(key))

    def __getitem__(self, key: str) -> Field:
        child = self.get(key)
        if child is None:
            raise self.error(f"missing required key '{key}'")
        return child

    def items(self) -> Iterator[tuple[str, Field]]:
        self.mapping()
        for key in self.value:
            yield key, Field(self.value[key], self.source, self._child_path(key), self._key_line(key))

    def sequence(self) -> list[Field]:
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, got {_kind(self.value)}")
        lines = getattr(self.value, "item_lines", [self.line] * len(self.value))
        return [Field(v, self.source, self._child_path(i), lines[i]) for i, v in enumerate(self.value)]

    # --- scalars ----------------------------------------------------------------------------
    def text(self, choices: tuple[str, ...] | None = None) -> str:
        if isinstance(self.value, dict | list) or self.value is None:
            raise self.error(f"expected text, got {_kind(self.value)}")
        value = str(self.value)
        if choices is not None and value not in choices:
            raise self.error(f"expected one of {', '.join(choices)}, got '{value}'")
        return value

    def integer(self, minimum: int | None = None, maximum: int | None = None) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.error(f"expected a whole number, got {_kind(self.value)} '{self.value}'")
        if minimum is not None and self.value < minimum:
            raise self.error(f"expected a whole number >= {minimum}, got {self.value}")
        if maximum is not None and self.value > maximum:
            raise self.error(f"expected a whole number <= {maximum}, got {self.value}")
        return int(self.value)

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"expected true or false, got '{self.value}'")
        return self.value

    def quantity(
        self,
        dimension: units.Dimension,
        *,
        positive: bool = False,
        non_negative: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        """The value in SI, checked for ``dimension`` and range."""
        if isinstance(self.value, dict | list) or self.value is None:
            raise self.error(f"expected {dimension.name or 'a quantity'}, got {_kind(self.value)}")
        try:
            value = units.parse_quantity(self.value, dimension, what="value")
        except units.UnitError as exc:
            raise self.error(str(exc).removeprefix("value: ")) from None
        if positive and not value > 0:
            raise self.error(f"must be greater than zero, got '{self.value}'")
        if non_negative and value < 0:
            raise self.error(f"must not be negative, got '{self.value}'")
        if minimum is not None and value < minimum:
            raise self.error(f"must be at least {minimum:g} (SI), got '{self.value}'")
        if maximum is not None and value > maximum:
            raise self.error(f"must be at most {maximum:g} (SI), got '{self.value}'")
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    return "text"
