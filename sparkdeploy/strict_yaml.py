"""YAML from third parties (recipes), read so that a hostile or careless file cannot hurt.

PyYAML's safe loader still lets the last of two equal keys win silently, expands aliases without
bound (a 1 KB "billion laughs" file takes minutes and gigabytes) and accepts keys of any type.
This loader refuses all three with the line they are on; everything else reads as ``safe_load``.
A key repeated with the same value (an upstream recipe does it) is only a warning: nothing is
ambiguous about it.
"""

from __future__ import annotations

from typing import Any

import yaml

# Real recipes use no anchors; a few dozen aliases leave room for hand-written ones.
MAX_ALIASES = 50
MAX_BYTES = 256 * 1024


class StrictYamlError(ValueError):
    """What is wrong, and where (``line``/``column`` are 1-based, None when unknown)."""

    def __init__(self, problem: str, line: int | None = None, column: int | None = None):
        self.problem = problem
        self.line = line
        self.column = column
        super().__init__(self.where + problem)

    @property
    def where(self) -> str:
        if self.line is None:
            return ""
        return f"line {self.line}, column {self.column}: " if self.column else f"line {self.line}: "


class _StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self.warnings: list[str] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise StrictYamlError(f"more than {MAX_ALIASES} aliases (*name)", mark.line + 1,
                                      mark.column + 1)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise StrictYamlError("a key must be a plain string", *where)
            earlier = seen.get(key_node.value)
            if earlier is not None:
                same = self.construct_object(earlier, deep=True) == self.construct_object(
                    value_node, deep=True)
                if not same:
                    raise StrictYamlError(f"duplicate key {key_node.value!r} with another value", *where)
                self.warnings.append(f"line {where[0]}: key {key_node.value!r} repeats the same value")
            seen[key_node.value] = value_node
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _StrictLoader.construct_mapping)


def load(data: bytes) -> tuple[Any, list[str]]:
    """Parse one YAML document from ``data`` (UTF-8) and return it with warnings about it;
    raise :class:`StrictYamlError`."""
    if len(data) > MAX_BYTES:
        raise StrictYamlError(f"the file is {len(data)} bytes, more than {MAX_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StrictYamlError(f"not UTF-8 text (byte {data[exc.start]:#04x})", line) from exc
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data(), loader.warnings
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise StrictYamlError(f"YAML syntax error: {problem}", *_position(mark)) from exc
    finally:
        loader.dispose()


def _position(mark: Any) -> tuple[int | None, int | None]:
    return (mark.line + 1, mark.column + 1) if mark else (None, None)
