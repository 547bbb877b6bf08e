"""Where upstream's recipes at the pinned commit are, and what its own run-recipe.py --solo makes
of each (``../shared/upstream-recipes/358bf26/``, never committed; ``SPARKDEPLOY_UPSTREAM_RECIPES``
points elsewhere)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sparkdeploy.data import PROJECT_ROOT

UPSTREAM = Path(os.environ.get("SPARKDEPLOY_UPSTREAM_RECIPES")
                or PROJECT_ROOT.parent / "shared" / "upstream-recipes" / "358bf26")


def expected() -> dict[str, dict]:
    """Recipe path (relative) -> upstream's verdict; fails the test when the catalogue is missing."""
    table = UPSTREAM / "expected-solo.json"
    if not table.is_file():
        pytest.fail(f"upstream's recipes are not at {UPSTREAM} (set SPARKDEPLOY_UPSTREAM_RECIPES)")
    return json.loads(table.read_text())["recipes"]


def names() -> list[str]:
    """The recipes, for parametrizing (one placeholder that fails when the catalogue is missing)."""
    return sorted(expected()) if (UPSTREAM / "expected-solo.json").is_file() else ["(missing)"]
