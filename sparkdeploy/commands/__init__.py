"""Subcommands of ``sparkdeploy``; each module has ``add_parser(subparsers)``."""

from sparkdeploy.commands import bench, clients, drift, render, sandbox, secrets, standins, verify

COMMANDS = [render, clients, secrets, sandbox, standins, verify, drift, bench]
