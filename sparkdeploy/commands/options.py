"""Options the subcommands share, spelled and parsed the way pyinfra's own are."""

from __future__ import annotations

import argparse
from typing import Any

from pyinfra.api import Inventory

from sparkdeploy.errors import ConfigError
from sparkdeploy.inventory import hosts_data, load_inventory, parse_data_overrides


def add_inventory_options(parser: argparse.ArgumentParser, data: bool = True) -> None:
    """``--inventory`` and (unless ``data`` is False) repeatable ``--data KEY=VALUE``."""
    parser.add_argument("--inventory", default="inventory.py", help="inventory file")
    if data:
        parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                            help="override host data, as pyinfra --data does (repeatable)")


def add_limit_option(parser: argparse.ArgumentParser) -> None:
    """Repeatable ``--limit``, as pyinfra's."""
    parser.add_argument("--limit", action="append", default=[], metavar="GROUP_OR_HOST",
                        help="group name or host name pattern, as pyinfra --limit (repeatable)")


def load_hosts(args: argparse.Namespace) -> tuple[Inventory, dict[str, dict[str, Any]]]:
    """The inventory named by the options, and every host's data with the overrides applied."""
    inventory = load_inventory(args.inventory, parse_data_overrides(getattr(args, "data", [])))
    return inventory, hosts_data(inventory)


def require_host(args: argparse.Namespace, data: dict[str, dict[str, Any]]) -> None:
    """Refuse a host name the inventory does not have, listing the ones it has."""
    if args.host not in data:
        raise ConfigError(args.inventory, None, f"no host named {args.host!r}",
                          allowed=", ".join(sorted(data)) or "no hosts defined")
