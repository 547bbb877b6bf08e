"""``sparkdeploy render HOST``: write every file the deploy would place on HOST, locally."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sparkdeploy.commands.options import add_inventory_options, load_hosts, require_host
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import plan_host, validate_inventory


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render", help="write the files the deploy would place on a host into a local folder",
        description="Render compose files, proxy config and callback for HOST without "
        "contacting any host.")
    parser.add_argument("host", help="inventory host name")
    parser.add_argument("--out", default="rendered", help="output folder (default: rendered/)")
    parser.add_argument("--show-secrets", action="store_true",
                        help="write secret files with their values (default: KEY=*** placeholders)")
    add_inventory_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _, data = load_hosts(args)
    require_host(args, data)
    plan = plan_host(args.host, data, validate_inventory(data))
    out = Path(args.out).resolve()
    for rendered in (rendered for rendered in plan.files if rendered.present):
        target = (out / rendered.path.lstrip("/")).resolve()
        if not target.is_relative_to(out):
            raise ConfigError(f"host {args.host!r} data", None,
                              f"{rendered.path} would be written outside {out}")
        target.parent.mkdir(parents=True, exist_ok=True)
        content = rendered.content
        if rendered.secret and not args.show_secrets:
            content = env_placeholders(content)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, int(rendered.mode, 8))
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(target, int(rendered.mode, 8))
        print(target)
    for service in plan.models:
        if service.model_name:
            print(f"model   {service.model_name}: {service.served_name} on port {service.port}, "
                  f"{service.memory_gib:g} GiB (--gpu-memory-utilization "
                  f"{service.values['gpu_memory_utilization']})")
        print(f"image   {service.image.describe()}")
        for repo in service.repos:
            print(f"weights {repo.repo_id} ({repo.role}, {repo.revision or 'default branch'})")
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def env_placeholders(content: str) -> str:
    """An env file with every value shown as ``***``: what the host gets, not the secrets."""
    return "".join(f"{line.partition('=')[0]}=***\n" for line in content.splitlines() if line)
