"""``sparkdeploy secrets``: rotate a generated secret, or hand the proxy and relay keys to clients.

Secrets are never printed: ``export`` writes them to a file of mode 0600.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparkdeploy.commands.options import add_inventory_options, load_hosts, require_host
from sparkdeploy.secrets import RELAY_SECRETS, forget, host_secrets, write_env_file


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("secrets", help="rotate generated secrets; export the proxy key")
    actions = parser.add_subparsers(dest="action", required=True)
    rotate = actions.add_parser("rotate", help="forget a generated secret; the next deploy places "
                                "a new one and restarts what uses it")
    rotate.add_argument("host", help="inventory host name")
    rotate.add_argument("--name", default="proxy_master_key",
                        help="proxy_master_key (default), vllm_api_key or relay_api_key")
    export = actions.add_parser("export", help="write the proxy key (and the relay's) as an env "
                                "file (mode 0600) for the client files: set -a; . FILE")
    export.add_argument("host", help="inventory host running the proxy")
    export.add_argument("--to", required=True, type=Path, help="file to write")
    for action in (rotate, export):
        add_inventory_options(action)
        action.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _, data = load_hosts(args)
    require_host(args, data)
    host_data = data[args.host]
    if args.action == "rotate":
        if forget(args.host, host_data, args.name):
            print(f"{args.name} of {args.host} forgotten: the next deploy places a new one; "
                  "update your clients afterwards (sparkdeploy secrets export)")
        else:
            print(f"{args.name} of {args.host} was not generated yet: nothing to rotate")
        return 0
    if not host_data.get("proxy_enabled"):
        print(f"sparkdeploy: host {args.host!r} runs no proxy", file=sys.stderr)
        return 1
    keys = {host_data["clients_key_env"]: host_secrets(args.host, host_data)["proxy_master_key"]}
    if host_data.get("relay_enabled"):
        keys[host_data["clients_relay_key_env"]] = host_secrets(args.host, host_data,
                                                                RELAY_SECRETS)["relay_api_key"]
    write_env_file(args.to, keys)
    print(f"wrote {args.to} (mode 0600)")
    return 0
