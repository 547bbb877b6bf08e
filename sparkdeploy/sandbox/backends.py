"""Sandbox backends by name. Each is a module beside this one with the functions of :class:`Backend`.

Adding a backend (the qemu ``vm`` one) means writing its module and one line in
:data:`BACKENDS`; the CLI lists whatever is registered here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol, cast

from sparkdeploy.sandbox.local import SandboxError
from sparkdeploy.sandbox.state import SandboxState
from sparkdeploy.sandbox.toolkit_repo import RepoEndpoint

BACKENDS = {
    "container": "sparkdeploy.sandbox.container",
    "vm": "sparkdeploy.sandbox.vm",
}
DEFAULT_BACKEND = "container"


class Backend(Protocol):
    """What a backend module provides."""

    # host_can_* data of its hosts: what the deploy can and cannot do there
    CAPABILITIES: dict[str, bool]

    def prepare(self) -> str:
        """Get the machine ready (install/start what the backend runs on); return the local
        address the sandbox reaches this machine on, where the stand-in repository is served."""

    def up(self, variant: str, repo: RepoEndpoint, repo_address: str, nodes: int) -> SandboxState:
        """Start a fresh sandbox of ``nodes`` hosts whose ``repo.hostname`` resolves to
        ``repo_address``; return once the deploy user can log in over SSH on each."""

    def is_up(self, state: SandboxState) -> bool:
        """Whether the recorded sandbox is still running."""

    def down(self, state: SandboxState | None) -> None:
        """Remove everything the backend made, also after a failed or unrecorded ``up``."""

    def describe(self, state: SandboxState) -> dict[str, str]:
        """Status lines for ``sparkdeploy sandbox status``."""

    def install_standins(self, state: SandboxState, progress: Callable[[str], None]) -> None:
        """Put into the sandbox what its data points at (stand-in images, upstream repository)."""


def load_backend(name: str) -> Backend:
    try:
        module = BACKENDS[name]
    except KeyError:
        raise SandboxError(f"unknown sandbox backend {name!r} "
                           f"(available: {', '.join(BACKENDS)})") from None
    return cast(Backend, importlib.import_module(module))
