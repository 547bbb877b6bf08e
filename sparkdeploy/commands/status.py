"""``sparkdeploy status``: per host and model, serving / wedged / starting / down; exit 0 when
everything serves, 2 when something does not, 1 on bad data."""

from __future__ import annotations

import argparse
import json
import sys

from sparkdeploy.commands.endpoints import select_hosts
from sparkdeploy.commands.options import add_inventory_options, add_limit_option, load_hosts
from sparkdeploy.drift import redact
from sparkdeploy.plan import validate_inventory
from sparkdeploy.secrets import known_secrets
from sparkdeploy.status import EXIT_ERROR, collect, exit_code, format_table, status_hosts


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", help="each host's models: serving, wedged, starting or down (exit 0 all serving, "
        "2 not, 1 error)",
        description="One SSH round trip per host, all hosts at once: each served model's state "
        "(serving: a one-token completion came back; wedged: /health answers, completions do "
        "not; starting; down; error: the engine refuses the probe with an HTTP 4xx; worker: a "
        "cluster's worker rank), tensor-parallel size, uptime, "
        "image, recipe, the watchdog's last action and the host's memory. Exit 0 when every "
        "model serves, 2 when any does not or a host cannot answer, 1 on bad data.")
    add_limit_option(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON list, one document per host")
    add_inventory_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    inventory, data = load_hosts(args)
    validate_inventory(data)
    hosts = status_hosts(select_hosts(inventory, list(data), args.limit), data)
    if not hosts:
        print("sparkdeploy status: no selected host serves a model", file=sys.stderr)
        return EXIT_ERROR
    statuses = collect(hosts, data)
    text = (json.dumps([status.as_json() for status in statuses], indent=2) if args.json
            else format_table(statuses))
    print(redact(text, known_secrets(data)))
    return exit_code(statuses)
