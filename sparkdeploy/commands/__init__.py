"""Subcommands of ``sparkdeploy``; each module has ``add_parser(subparsers)``."""

from sparkdeploy.commands import (
    bench,
    clients,
    drift,
    render,
    sandbox,
    secrets,
    standins,
    status,
    verify,
)

COMMANDS = [render, clients, secrets, sandbox, standins, verify, status, drift, bench]
