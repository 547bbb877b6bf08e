"""The CI flow against the running sandbox (``scripts/test`` starts a fresh one first).

Everything here acts on the sandbox recorded by ``sparkdeploy sandbox up``: the deploy runs as
an operator runs it (``pyinfra inventory.py deploy.py --limit sandbox``), drift is checked with
``sparkdeploy drift``, and hosts are changed behind the deploy's back over SSH, as root.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from sparkdeploy.apply import ApplyReport, apply_deploy, run_sparkdeploy
from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.drift import pyinfra_executable
from sparkdeploy.inventory import hosts_data, load_inventory
from sparkdeploy.sandbox.sshkey import run_as_root
from sparkdeploy.sandbox.state import HOST_NAME, SandboxState, load_state


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--deploy", default="deploy.py",
                     help="deploy file to test (default: deploy.py; another while developing a task)")


@pytest.fixture(scope="session")
def deploy_file(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("deploy")


@pytest.fixture(scope="session")
def deploy(deploy_file: str):
    """Apply the deploy to the sandbox (``pyinfra … --limit sandbox -y``) and report changes."""
    return lambda: apply_deploy([HOST_NAME], deploy=deploy_file)


@pytest.fixture(scope="session")
def sparkdeploy():
    """Run the project's console script as an operator runs it."""
    return run_sparkdeploy


@pytest.fixture(scope="session")
def drift_check(sparkdeploy, deploy_file: str):
    """``sparkdeploy drift --limit sandbox`` for the deploy under test."""
    return lambda: sparkdeploy("drift", "--limit", HOST_NAME, "--deploy", deploy_file)


@pytest.fixture(scope="session")
def sandbox() -> SandboxState:
    state = load_state()
    if state is None:
        pytest.fail("no sandbox is up: run `sparkdeploy sandbox up` (scripts/test does)")
    return state


@pytest.fixture(scope="session")
def sandbox_data(sandbox: SandboxState) -> dict[str, Any]:
    """The sandbox host's inventory data (group_data included), for paths the deploy manages."""
    return hosts_data(load_inventory("inventory.py"))[HOST_NAME]


@pytest.fixture(scope="session")
def first_deploy(sandbox: SandboxState, deploy) -> ApplyReport:
    """The deploy applied once at the start of the session."""
    return deploy()


@pytest.fixture(scope="session")
def converged(first_deploy: ApplyReport) -> ApplyReport:
    """A sandbox the deploy converged; tests that need one fail early when it did not."""
    assert first_deploy.returncode == 0, first_deploy.failure_summary()
    return first_deploy


@pytest.fixture(scope="session")
def on_sandbox(sandbox: SandboxState):
    """Run a shell command as root on the sandbox; returns its stdout, fails the test on error.

    Each command gets its own SSH connection: deploys restart sshd between commands.
    """
    data = sandbox.hosts[HOST_NAME]

    def run(command: str, check: bool = True) -> str:
        status, output, error = run_as_root(data, command)
        if check and status != 0:
            pytest.fail(f"on the sandbox, `{command}` failed: {error.strip()}")
        return output

    return run


@pytest.fixture(scope="session")
def changed_ops(deploy_file: str):
    """Apply the deploy with ``--data`` overrides; return {host: labels of operations that changed}."""

    def apply(*data: str) -> dict[str, list[str]]:
        command = [pyinfra_executable(), "inventory.py", deploy_file, "-y", "--json", "--limit", HOST_NAME]
        command += [arg for item in data for arg in ("--data", item)]
        result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=False, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr[-4000:]
        changes: dict[str, list[str]] = {}
        for operation in (json.loads(result.stdout).get("results") or {}).get("operations", []):
            for host in operation.get("success", []):
                changes.setdefault(host, []).append(operation.get("name", "?"))
        return changes

    return apply


@pytest.fixture
def containers(on_sandbox, sandbox_data):
    """Container name -> (id, started at) of the serving stack, read on demand."""
    base = sandbox_data["vllm_container_name"]
    names = [base, *(f"{base}-{model['name']}" for model in sandbox_data["models"]), "litellm", "litellm-db",
             "sparkrelay"]

    def read() -> dict[str, tuple[str, str]]:
        lines = on_sandbox("docker inspect --format '{{.Name}} {{.Id}} {{.State.StartedAt}}' "
                           + " ".join(names)).split("\n")
        return {name.lstrip("/"): (cid, started) for name, cid, started in
                (line.split() for line in lines if line.strip())}

    return read
