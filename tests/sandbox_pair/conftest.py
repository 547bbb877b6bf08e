"""Two sandbox hosts cabled like a Spark pair (``sparkdeploy sandbox up --nodes 2 --fresh``),
deployed as one cluster: the head ``sandbox-1`` and the worker ``sandbox-2``."""

from __future__ import annotations

from typing import Any

import pytest

from sparkdeploy.apply import ApplyReport, apply_deploy, run_sparkdeploy
from sparkdeploy.inventory import hosts_data, load_inventory
from sparkdeploy.sandbox.sshkey import run_as_root
from sparkdeploy.sandbox.state import HOST_NAME, SandboxState, load_state, node_names

HEAD, WORKER = node_names(2)


@pytest.fixture(scope="session")
def pair() -> SandboxState:
    state = load_state()
    if state is None or sorted(state.hosts) != [HEAD, WORKER]:
        pytest.fail("no sandbox pair is up: run `sparkdeploy sandbox up --nodes 2 --fresh`")
    return state


@pytest.fixture(scope="session")
def pair_data(pair: SandboxState) -> dict[str, dict[str, Any]]:
    data = hosts_data(load_inventory("inventory.py"))
    return {name: data[name] for name in (HEAD, WORKER)}


@pytest.fixture(scope="session")
def deploy_pair():
    """The deploy on both nodes, as an operator runs it (``--limit sandbox``: the group)."""
    return lambda: apply_deploy([HOST_NAME])


@pytest.fixture(scope="session")
def first_deploy(pair: SandboxState, deploy_pair) -> ApplyReport:
    report = deploy_pair()
    assert report.returncode == 0, report.failure_summary()
    return report


@pytest.fixture(scope="session")
def sparkdeploy():
    return run_sparkdeploy


@pytest.fixture(scope="session")
def on_node(pair: SandboxState):
    """Run a shell command as root on one node; its stdout, the test failing on error."""

    def run(node: str, command: str, check: bool = True) -> str:
        status, output, error = run_as_root(pair.hosts[node], command)
        if check and status != 0:
            pytest.fail(f"on {node}, `{command}` failed: {error.strip()}")
        return output

    return run


@pytest.fixture
def rank_containers(on_node, pair_data):
    """Node -> (container id, started at, image id) of its vLLM rank, read on demand."""

    def read() -> dict[str, tuple[str, ...]]:
        ranks = {}
        for node in (HEAD, WORKER):
            name = pair_data[node]["vllm_container_name"]
            fields = "'{{.Id}} {{.State.StartedAt}} {{.Image}}'"
            ranks[node] = tuple(on_node(node, f"docker inspect --format {fields} {name}").split())
        return ranks

    return read
