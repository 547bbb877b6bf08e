"""``sparkdeploy drift``: show what a deploy would change on each host; exit 0 clean, 2 drift, 1 error."""

from __future__ import annotations

import argparse

from sparkdeploy.commands.options import add_inventory_options, add_limit_option
from sparkdeploy.drift import (
    EXIT_CLEAN,
    EXIT_DRIFT,
    EXIT_ERROR,
    check_drift,
    format_report,
    inventory_secrets,
)
from sparkdeploy.host_suite import run_host_suite

# pytest: 0 passed, 1 some test failed, 5 no tests collected; anything else is an error.
_SUITE_EXIT = {0: EXIT_CLEAN, 1: EXIT_DRIFT, 5: EXIT_CLEAN}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "drift", help="show what a deploy would change (exit 0 clean, 2 drift, 1 error)",
        description="Plan the deploy with pyinfra --dry (change detection on, nothing applied) "
        "and print, per host, the operations that would change it. Exit 0 when every host "
        "matches its data, 2 on drift, 1 on error (unreachable host, invalid data).")
    add_limit_option(parser)
    parser.add_argument("--verify", action="store_true",
                        help="also run the testinfra suite (tests/host) against each host")
    add_inventory_options(parser, data=False)
    parser.add_argument("--deploy", default="deploy.py", help="deploy file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = check_drift(args.limit, args.inventory, args.deploy)
    print(format_report(report, inventory_secrets(args.inventory)))
    code = report.exit_code
    if args.verify and code != EXIT_ERROR:
        print("\nhost checks (tests/host):", flush=True)
        suite = _SUITE_EXIT.get(run_host_suite(report.hosts), EXIT_ERROR)
        code = EXIT_ERROR if suite == EXIT_ERROR else max(code, suite)
    return code
