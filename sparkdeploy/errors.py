"""Errors that tell the operator which file and key are wrong and what is allowed instead."""

from __future__ import annotations

from pyinfra.api.exceptions import PyinfraError


class ConfigError(PyinfraError):
    """Bad operator input (a recipe, group data, a ``--data`` override), found before any change.

    The message always names where the value came from, the key, what is wrong and, when it can,
    what is allowed, so the operator can fix it without reading code. It is a ``PyinfraError`` so
    the pyinfra CLI reports it as one line and exits 1 instead of printing a traceback.
    """

    def __init__(self, source: str, key: str | None, problem: str, allowed: str | None = None):
        self.source = source
        self.key = key
        self.problem = problem
        self.allowed = allowed
        super().__init__(self._format())

    def _format(self) -> str:
        where = f"{self.source}: key '{self.key}'" if self.key else self.source
        text = f"{where}: {self.problem}"
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        return text


def type_name(value: object) -> str:
    """Name a value's type the way YAML and group_data authors think of it."""
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
    }.get(type(value), type(value).__name__)
