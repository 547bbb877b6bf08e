"""The VM flow against the running ``vm`` sandbox (``scripts/test`` starts a fresh one first:
``sparkdeploy sandbox up --fresh --backend vm``).

The deploy runs as an operator runs it (``pyinfra inventory.py deploy.py --limit sandbox``),
drift is planned with ``pyinfra … --dry --json``, and the guest is inspected over SSH as root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparkdeploy.apply import ApplyReport, apply_deploy
from sparkdeploy.inventory import hosts_data, load_inventory
from sparkdeploy.sandbox import vm_qemu
from sparkdeploy.sandbox.state import HOST_NAME, SandboxState, load_state


@pytest.fixture(scope="session")
def vm() -> SandboxState:
    state = load_state()
    if state is None or state.backend != "vm":
        pytest.fail(f"no VM sandbox is up ({state.backend + ' sandbox' if state else 'none'} "
                    "recorded): run `sparkdeploy sandbox up --fresh --backend vm`")
    return state


@pytest.fixture(scope="session")
def vm_data(vm: SandboxState) -> dict[str, Any]:
    """The VM host's inventory data (group_data included)."""
    return hosts_data(load_inventory("inventory.py"))[HOST_NAME]


@pytest.fixture(scope="session")
def in_vm(vm: SandboxState):
    """Run a shell command as root in the VM; returns its output, fails the test on error."""
    data = vm.hosts[HOST_NAME]

    def run(command: str, check: bool = True, timeout: float = 300) -> str:
        code, output = vm_qemu.guest_run(data["ssh_port"], data["ssh_user"], Path(data["ssh_key"]),
                                         command, timeout=timeout, check=False)
        if check and code != 0:
            pytest.fail(f"in the VM, `{command}` failed (exit {code}): {output.strip()[-2000:]}")
        return output

    return run


@pytest.fixture(scope="session")
def deploy():
    """Apply deploy.py to the sandbox (``pyinfra … --limit sandbox -y``) and report changes."""
    return lambda: apply_deploy([HOST_NAME])


@pytest.fixture(scope="session")
def first_deploy(vm: SandboxState, deploy) -> ApplyReport:
    return deploy()


@pytest.fixture(scope="session")
def converged(first_deploy: ApplyReport) -> ApplyReport:
    assert first_deploy.returncode == 0, first_deploy.failure_summary()
    return first_deploy
