"""Shared helpers for the offline unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkdeploy.inventory import hosts_data, load_inventory
from sparkdeploy.sandbox import state as sandbox_state

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_running_sandbox(monkeypatch):
    """Offline means the seed inventory only: a sandbox that happens to be up (a cluster pair,
    say) would otherwise join every inventory these tests load, and take their overrides."""
    monkeypatch.setattr(sandbox_state, "STATE_FILE", Path("/nonexistent/sparkdeploy-unit/state.json"))


@pytest.fixture
def inventory_data(tmp_path):
    """Every inventory host's data, with generated secrets kept out of the project tree."""

    def load(**overrides):
        data = {"secrets_dir": str(tmp_path / "secrets"), **overrides}
        return hosts_data(load_inventory("inventory.py", data))

    return load


@pytest.fixture
def write_recipe(tmp_path):
    """Write recipe YAML to a temporary file and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write
