"""Where a running sandbox records what it is and how to reach it, read by inventory.py.

``state.json`` holds the backend, the variant, what the backend created (so ``down`` removes
exactly that) and the inventory hosts with their data: SSH connection values plus what the
backend cannot do (``host_can_*``), so the host tasks skip those steps visibly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.errors import ConfigError

# One sandbox per directory; SPARKDEPLOY_SANDBOX_DIR selects another, so a second sandbox (a VM
# beside the container, say) runs without touching the first. Every command run with it set
# (sparkdeploy, pyinfra, pytest) sees that sandbox as inventory host "sandbox".
SANDBOX_DIR = Path(os.environ.get("SPARKDEPLOY_SANDBOX_DIR")
                   or PROJECT_ROOT / ".sparkdeploy" / "sandbox").resolve()
STATE_FILE = SANDBOX_DIR / "state.json"
# The deploy user's key for every sandbox (generated once, never leaves this directory).
SSH_KEY_FILE = SANDBOX_DIR / "id_ed25519"
HOST_NAME = "sandbox"


def node_names(count: int) -> list[str]:
    """Inventory names of a sandbox's hosts: one keeps HOST_NAME, a cluster numbers them
    (head first); HOST_NAME is then their group."""
    return [HOST_NAME] if count == 1 else [f"{HOST_NAME}-{i}" for i in range(1, count + 1)]


@dataclass
class SandboxState:
    backend: str
    variant: str
    # inventory host name -> host data
    hosts: dict[str, dict[str, Any]]
    # what the backend made: container, volume, image names, ...
    resources: dict[str, Any] = field(default_factory=dict)
    # the stand-in servers on this machine (pid and address): the toolkit apt repository, the
    # Hugging Face hub and the image registry; the repository's address is where the sandbox
    # reaches this machine
    repo_server: dict[str, Any] = field(default_factory=dict)
    hub_server: dict[str, Any] = field(default_factory=dict)
    # the stand-in image registry upstream's prebuilt images are pulled from
    registry_server: dict[str, Any] = field(default_factory=dict)


def load_state() -> SandboxState | None:
    """The recorded sandbox, or None when none is up."""
    try:
        return SandboxState(**json.loads(STATE_FILE.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(STATE_FILE), None, f"unreadable sandbox state ({exc}); "
                          "remove the sandbox with `sparkdeploy sandbox down`") from exc


def save_state(state: SandboxState) -> None:
    """Write the state atomically, readable only by its owner."""
    SANDBOX_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(state), handle, indent=2, sort_keys=True)
    tmp.replace(STATE_FILE)


def sandbox_host_data(backend: str, capabilities: dict[str, bool], ssh_user: str,
                      ssh_port: int) -> dict[str, Any]:
    """Inventory data of a sandbox host: how pyinfra reaches it and what it cannot do."""
    return {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": ssh_port,
        "ssh_user": ssh_user,
        "ssh_key": str(SSH_KEY_FILE),
        # Every sandbox has new host keys on a reused port: nothing to pin.
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "no",
        "sandbox_backend": backend,
        **capabilities,
    }


def clear_state() -> None:
    STATE_FILE.unlink(missing_ok=True)


def inventory_hosts() -> list[tuple[str, dict[str, Any]]]:
    """The sandbox as inventory hosts while it is up; none otherwise."""
    state = load_state()
    return list(state.hosts.items()) if state else []
