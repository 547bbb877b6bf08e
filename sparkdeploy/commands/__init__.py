"""Subcommands of ``sparkdeploy``; each module has ``add_parser(subparsers)``."""

from sparkdeploy.commands import clients, drift, render, sandbox, standins, verify

COMMANDS = [render, clients, sandbox, standins, verify, drift]
