"""The testinfra harness: the same host checks against the sandbox (CI) or a real Spark.

Which host, in order:
- testinfra's own ``--hosts`` (with its ``--ssh-config``, ``--sudo``, ...), as usual;
- else ``--inventory-host NAME`` (default ``sandbox``): the inventory host reached as pyinfra
  reaches it (an OpenSSH client config written from its inventory data), commands run with sudo.

Operators: ``pytest tests/host --inventory-host pegasus.home.arpa`` (the SSH user needs
passwordless sudo, as the deploy does). Tests read the target's inventory data from the
``host_data`` fixture and mark checks the host may be unable to pass, e.g.
``@pytest.mark.requires("host_can_mount_nfs")``: such tests are skipped, visibly, where the
data says the host cannot do it (the container sandbox).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sparkdeploy.data import documented_defaults
from sparkdeploy.host_suite import ssh_config
from sparkdeploy.inventory import hosts_data, load_inventory

DEFAULT_TARGET = "sandbox"
# (host name, its inventory data) of the checked host
_TARGET = pytest.StashKey[tuple[str, dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--inventory-host", default=None, metavar="NAME",
        help=f"inventory host to check (default: {DEFAULT_TARGET}, the running sandbox); "
        "ignored when testinfra's --hosts is given")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(capability): skip unless the host's data has this host_can_* true")
    name = config.getoption("inventory_host")
    if config.option.hosts:
        data = _inventory_data(name) if name else {}
        config.stash[_TARGET] = (name or config.option.hosts, {**documented_defaults(), **data})
        return
    name = name or DEFAULT_TARGET
    data = _inventory_data(name)
    directory = Path(tempfile.mkdtemp(prefix="sparkdeploy-testinfra-"))
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    (directory / "ssh_config").write_text(ssh_config(name, data))
    config.option.hosts = f"paramiko://{name}"
    config.option.ssh_config = str(directory / "ssh_config")
    config.option.sudo = True
    config.stash[_TARGET] = (name, data)


def _inventory_data(name: str) -> dict[str, Any]:
    data = hosts_data(load_inventory("inventory.py"))
    if name not in data:
        hint = ("start it with `sparkdeploy sandbox up`, or " if name == DEFAULT_TARGET else "")
        raise pytest.UsageError(
            f"no inventory host {name!r}: {hint}name one with --inventory-host NAME "
            f"(inventory hosts: {', '.join(sorted(data)) or 'none'}) or use testinfra's --hosts")
    return data[name]


@pytest.fixture(scope="session")
def host_name(pytestconfig: pytest.Config) -> str:
    """The checked host's inventory name (testinfra's --hosts value when it has none)."""
    return pytestconfig.stash[_TARGET][0]


@pytest.fixture(scope="session")
def host_data(pytestconfig: pytest.Config) -> dict[str, Any]:
    """The checked host's inventory data (group_data/all.py defaults when it has none)."""
    return pytestconfig.stash[_TARGET][1]


def pytest_runtest_setup(item: pytest.Item) -> None:
    name, data = item.config.stash[_TARGET]
    for marker in item.iter_markers("requires"):
        capability = marker.args[0]
        if not data.get(capability, True):
            pytest.skip(f"{name} cannot do this: {capability} is false in its data")
