"""The VM flow against the running ``vm`` sandbox pair (``scripts/test`` starts a fresh one first:
``sparkdeploy sandbox up --fresh --backend vm --nodes 2``): two VMs cabled like two Sparks, a
cluster without a recipe, so the deploy configures and proves their link on real kernels.

The deploy runs as an operator runs it (``pyinfra inventory.py deploy.py --limit sandbox``, the
group of both), drift is planned with ``pyinfra … --dry --json``, and the guests are inspected
over SSH as root. Checks of one host (NFS, page cache, reboot) run on the head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparkdeploy.apply import ApplyReport, apply_deploy
from sparkdeploy.inventory import hosts_data, load_inventory
from sparkdeploy.sandbox import vm_qemu
from sparkdeploy.sandbox.state import HOST_NAME, SandboxState, load_state, node_names

NODES = node_names(2)
HEAD = NODES[0]


@pytest.fixture(scope="session")
def vm() -> SandboxState:
    state = load_state()
    if state is None or state.backend != "vm" or sorted(state.hosts) != NODES:
        pytest.fail(f"no VM sandbox pair is up ({state.backend + ' sandbox' if state else 'none'} "
                    "recorded): run `sparkdeploy sandbox up --fresh --backend vm --nodes 2`")
    return state


@pytest.fixture(scope="session")
def vm_data(vm: SandboxState) -> dict[str, Any]:
    """The head VM's inventory data (group_data included)."""
    return hosts_data(load_inventory("inventory.py"))[HEAD]


@pytest.fixture(scope="session")
def in_node(vm: SandboxState):
    """Run a shell command as root in the named VM; returns its output, fails the test on error."""

    def run(name: str, command: str, check: bool = True, timeout: float = 300) -> str:
        data = vm.hosts[name]
        code, output = vm_qemu.guest_run(data["ssh_port"], data["ssh_user"], Path(data["ssh_key"]),
                                         command, timeout=timeout, check=False)
        if check and code != 0:
            pytest.fail(f"in {name}, `{command}` failed (exit {code}): {output.strip()[-2000:]}")
        return output

    return run


@pytest.fixture(scope="session")
def in_vm(in_node):
    """Run a shell command as root in the head VM."""
    return lambda command, check=True, timeout=300: in_node(HEAD, command, check, timeout)


@pytest.fixture(scope="session")
def deploy():
    """Apply deploy.py to both VMs (``pyinfra … --limit sandbox -y``) and report changes."""
    return lambda: apply_deploy([HOST_NAME])


@pytest.fixture(scope="session")
def first_deploy(vm: SandboxState, deploy) -> ApplyReport:
    return deploy()


@pytest.fixture(scope="session")
def converged(first_deploy: ApplyReport) -> ApplyReport:
    assert first_deploy.returncode == 0, first_deploy.failure_summary()
    return first_deploy
