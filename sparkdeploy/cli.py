"""The ``sparkdeploy`` command: a thin layer over the library, one module per subcommand."""

from __future__ import annotations

import argparse
import sys

from sparkdeploy.commands import COMMANDS
from sparkdeploy.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparkdeploy", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"sparkdeploy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
