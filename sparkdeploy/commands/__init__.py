"""Subcommands of ``sparkdeploy``; each module has ``add_parser(subparsers)``."""

from sparkdeploy.commands import clients, render

COMMANDS = [render, clients]
