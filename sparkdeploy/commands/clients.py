"""``sparkdeploy clients``: write client launchers and configs for every model the proxies serve."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sparkdeploy.clients import client_files
from sparkdeploy.inventory import hosts_data, load_inventory, parse_data_overrides
from sparkdeploy.plan import validate_inventory


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "clients", help="render Claude Code, OpenCode and Anthropic SDK client files",
        description="Render client launchers/configs for every model each proxy serves. "
        "No secret is written: the files read the proxy key from the environment.")
    parser.add_argument("--out", default="clients", help="output folder (default: clients/)")
    parser.add_argument("--inventory", default="inventory.py", help="inventory file")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                        help="override host data, as pyinfra --data does (repeatable)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = hosts_data(load_inventory(args.inventory, parse_data_overrides(args.data)))
    for relative, (content, mode) in sorted(client_files(data, validate_inventory(data)).items()):
        target = Path(args.out) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        os.chmod(target, mode)
        print(target)
    return 0
