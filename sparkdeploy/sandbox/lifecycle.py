"""``up``, ``down`` and ``status`` of the sandbox, whatever its backend.

The backend makes the host; this module adds what every backend shares: the stand-in servers
the ``sandbox`` group's data points at (toolkit apt repository, Hugging Face hub), the recorded
state inventory.py reads, and an ``ssh_config`` for operators.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparkdeploy.host_suite import ssh_config
from sparkdeploy.sandbox import hub_standin, registry_standin, toolkit_repo
from sparkdeploy.sandbox.backends import DEFAULT_BACKEND, load_backend
from sparkdeploy.sandbox.state import (
    SANDBOX_DIR,
    SandboxState,
    clear_state,
    load_state,
    save_state,
)

SSH_CONFIG_FILE = SANDBOX_DIR / "ssh_config"


@dataclass(frozen=True)
class _StandinServer:
    """A background server on this machine the sandbox reaches, recorded in a state field."""

    label: str
    start: Callable[[str, Path], dict[str, object]]
    stop: Callable[[int | None], None]
    is_running: Callable[[int | None], bool]
    log_file: Path
    scheme: str = "http"


# state field -> server
_SERVERS = {
    "repo_server": _StandinServer("toolkit repo", toolkit_repo.start, toolkit_repo.stop,
                                  toolkit_repo.is_running, SANDBOX_DIR / "toolkit-repo.log"),
    "hub_server": _StandinServer("hub", hub_standin.serve, hub_standin.stop,
                                 hub_standin.is_running, SANDBOX_DIR / "hub.log"),
    "registry_server": _StandinServer("registry", registry_standin.serve, registry_standin.stop,
                                      registry_standin.is_running, SANDBOX_DIR / "registry.log",
                                      scheme="https"),
}


@dataclass(frozen=True)
class UpResult:
    state: SandboxState
    reused: bool
    seconds: float


def up(backend_name: str, variant: str, fresh: bool = False,
       progress: Callable[[str], None] = lambda _line: None, nodes: int = 1) -> UpResult:
    """Start a sandbox of ``nodes`` hosts, or keep the running one when it already has this
    backend, variant and size; either way it ends with the stand-ins its data points at installed."""
    started = time.monotonic()
    backend = load_backend(backend_name)
    current = load_state()
    if current and not fresh and backend.is_up(current) \
            and (current.backend, current.variant, len(current.hosts)) == (backend_name, variant, nodes):
        if _restart_stopped_servers(current, backend.prepare()):
            save_state(current)
        backend.install_standins(current, progress)
        return UpResult(current, True, time.monotonic() - started)
    down(backend_name)
    address = backend.prepare()
    servers: dict[str, dict[str, object]] = {}
    try:
        for field, server in _SERVERS.items():
            servers[field] = server.start(address, server.log_file)
        state = backend.up(variant, toolkit_repo.repo_endpoint(), address, nodes)
    except BaseException:
        for field, record in servers.items():
            _SERVERS[field].stop(record["pid"])
        backend.down(None)
        raise
    for field, record in servers.items():
        setattr(state, field, record)
    save_state(state)
    SSH_CONFIG_FILE.write_text("".join(ssh_config(name, data) for name, data in state.hosts.items()))
    backend.install_standins(state, progress)
    return UpResult(state, False, time.monotonic() - started)


def down(backend_name: str = DEFAULT_BACKEND) -> SandboxState | None:
    """Remove the recorded sandbox, or leftovers of a failed ``up`` of ``backend_name``."""
    state = load_state()
    if state:
        for field, server in _SERVERS.items():
            server.stop(getattr(state, field).get("pid"))
    load_backend(state.backend if state else backend_name).down(state)
    clear_state()
    SSH_CONFIG_FILE.unlink(missing_ok=True)
    return state


def status() -> dict[str, str] | None:
    """Status lines of the recorded sandbox, or None when none is up."""
    state = load_state()
    if not state:
        return None
    lines = {"backend": state.backend, "variant": state.variant}
    lines.update(load_backend(state.backend).describe(state))
    for name, data in state.hosts.items():
        lines[f"host {name}"] = (f"ssh {data['ssh_user']}@{data['ssh_hostname']} -p {data['ssh_port']}"
                                 f" (or: ssh -F {SSH_CONFIG_FILE} {name})")
    for field, server in _SERVERS.items():
        record = getattr(state, field)
        alive = server.is_running(record.get("pid"))
        lines[server.label] = (f"{server.scheme}://{record.get('address')} "
                               f"({'serving' if alive else 'stopped'})")
    return lines


def _restart_stopped_servers(state: SandboxState, address: str) -> bool:
    """Start the stand-in servers of ``state`` that are not running; whether any was started."""
    started = False
    for field, server in _SERVERS.items():
        if not server.is_running(getattr(state, field).get("pid")):
            setattr(state, field, server.start(address, server.log_file))
            started = True
    return started
