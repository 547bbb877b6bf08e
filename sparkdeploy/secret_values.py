"""Secrets supplied by the operator, kept out of everything pyinfra prints about data.

``pyinfra … debug-inventory`` and ``--debug`` print every host's data. A secret read from the
environment with :func:`secret_from_env` is a :class:`SuppliedSecret`, shown as ``***`` there;
code reads it with :func:`reveal`.
"""

from __future__ import annotations

import os
from typing import Any


class SuppliedSecret:
    """A secret value that prints (repr, JSON, str) as ``***``."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "SuppliedSecret(***)"

    __str__ = __repr__

    def to_json(self) -> str:
        """What pyinfra's JSON output shows (its encoder calls ``to_json``)."""
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SuppliedSecret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def secret_from_env(name: str) -> SuppliedSecret | None:
    """The environment variable ``name`` as a secret, or None when it is unset or empty."""
    value = os.environ.get(name)
    return SuppliedSecret(value) if value else None


def reveal(value: Any) -> Any:
    """The plain value of a secret (supplied through the environment or given as a string)."""
    return value.value if isinstance(value, SuppliedSecret) else value
