"""``sparkdeploy clients``: write client launchers and configs for every model the proxies serve."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sparkdeploy.clients import client_files
from sparkdeploy.commands.options import add_inventory_options, load_hosts
from sparkdeploy.plan import validate_inventory


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "clients", help="render Claude Code, OpenCode and Anthropic SDK client files",
        description="Render client launchers/configs for every model each proxy serves. "
        "No secret is written: the files read the proxy key from the environment.")
    parser.add_argument("--out", default="clients", help="output folder (default: clients/)")
    add_inventory_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _, data = load_hosts(args)
    for relative, (content, mode) in sorted(client_files(data, validate_inventory(data)).items()):
        target = Path(args.out) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        os.chmod(target, mode)
        print(target)
    return 0
