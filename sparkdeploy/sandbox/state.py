"""Where a running sandbox records how to reach it, read by inventory.py."""

from __future__ import annotations

import json
from typing import Any

from sparkdeploy.data import PROJECT_ROOT

STATE_FILE = PROJECT_ROOT / ".sparkdeploy" / "sandbox" / "state.json"


def inventory_hosts() -> list[tuple[str, dict[str, Any]]]:
    """The sandbox as inventory hosts while it is up; none otherwise."""
    try:
        state = json.loads(STATE_FILE.read_text())
    except FileNotFoundError:
        return []
    return [(name, host["ssh"]) for name, host in state.get("hosts", {}).items()]
