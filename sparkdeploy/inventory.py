"""The inventory (inventory.py + group_data/) as plain data, for deploy.py and the CLI."""

from __future__ import annotations

import os
from typing import Any

from pyinfra.api import Inventory, State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory
from pyinfra_cli.util import parse_cli_arg

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import HostPlan, plan_host, validate_inventory
from sparkdeploy.vllm_service import VllmService

_validated: dict[int, dict[str, tuple[VllmService, ...]]] = {}


def hosts_data(inventory: Inventory) -> dict[str, dict[str, Any]]:
    """Every host's merged data (--data > host > groups > all), inactive hosts included."""
    return {host.name: host.data.dict() for host in inventory}


def host_plan(inventory: Inventory, host_name: str) -> HostPlan:
    """One host's plan; the whole inventory is validated once per run, before the first host."""
    data = hosts_data(inventory)
    key = id(inventory)
    if key not in _validated:
        _validated[key] = validate_inventory(data)
    return plan_host(host_name, data, _validated[key])


def parse_data_overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs parsed exactly as ``pyinfra --data`` parses them."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--data", pair, "expected KEY=VALUE")
        overrides[key] = parse_cli_arg(value)
    return overrides


def load_inventory(path: str = "inventory.py", overrides: dict[str, Any] | None = None) -> Inventory:
    """Load an inventory file with its group_data, as the pyinfra CLI would, without connecting."""
    cwd = os.getcwd()
    os.chdir(PROJECT_ROOT)
    try:
        with ctx_state.use(State()):
            return make_inventory(path, override_data=overrides or {}, cwd=str(PROJECT_ROOT))
    finally:
        os.chdir(cwd)
