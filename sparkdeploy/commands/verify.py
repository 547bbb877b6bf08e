"""``sparkdeploy verify``: check tool calling on every served model, directly and via the proxy.

Works against any inventory: the sandbox in CI, real Sparks for operators. Prints a PASS/FAIL
table and the servers' ``system_fingerprint``s; exits 1 when any check fails. Keys come from the
local secret store and are sent only as request headers, never printed.
"""

from __future__ import annotations

import argparse
import sys

import paramiko

from sparkdeploy.commands.endpoints import endpoint_client, open_tunnel, select_hosts
from sparkdeploy.commands.options import add_inventory_options, add_limit_option, load_hosts
from sparkdeploy.drift import redact
from sparkdeploy.plan import validate_inventory
from sparkdeploy.secrets import known_secrets
from sparkdeploy.tunnel import SshTunnel
from sparkdeploy.verify import (
    CheckResult,
    check_proxy,
    check_rank,
    check_relay,
    check_tensor_parallel,
    check_vllm,
    format_table,
    plan_targets,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify", help="check tool calling on each served model, on vLLM and through the proxy",
        description="Per served model: /v1/models, a forced tool call, JSON arguments and a "
        "role: tool round trip on vLLM; /v1/messages tool_use through each proxy, streaming and "
        "not; a relayed turn through each relay. Exit status 1 when any check fails.")
    add_limit_option(parser)
    add_inventory_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    inventory, data = load_hosts(args)
    selected = select_hosts(inventory, list(data), args.limit)
    targets = plan_targets(selected, data, validate_inventory(data))
    if not targets:
        print("sparkdeploy verify: no vLLM or proxy on the selected hosts", file=sys.stderr)
        return 1
    results: list[CheckResult] = []
    fingerprints: set[str] = set()
    tunnels: dict[str, SshTunnel] = {}
    try:
        for target in targets:
            try:
                if target.kind == "rank":
                    tunnel = open_tunnel(target.host_name, data[target.host_name], tunnels)
                    results.append(check_rank(tunnel.run, target.endpoint, target.models[0],
                                              target.container))
                    continue
                with endpoint_client(target, data[target.host_name], tunnels) as client:
                    for model in target.models:
                        if target.kind == "vllm":
                            seen: set[str] = set()
                            results += check_vllm(client, target.endpoint, model, seen)
                            if target.tensor_parallel > 1:
                                results.append(check_tensor_parallel(
                                    target.endpoint, model, target.tensor_parallel, seen))
                            fingerprints |= seen
                        elif target.kind == "relay":
                            results += check_relay(client, target.endpoint, model)
                        else:
                            results += check_proxy(client, target.endpoint, model)
            except (OSError, paramiko.SSHException) as exc:
                results.append(CheckResult(target.endpoint, ", ".join(target.models),
                                           "SSH tunnel to the host", False, f"{type(exc).__name__}: {exc}"))
    finally:
        for tunnel in tunnels.values():
            tunnel.close()
    print(redact(format_table(results), known_secrets(data)))
    failed = sum(not result.passed for result in results)
    print(f"\nsystem_fingerprint: {', '.join(sorted(fingerprints)) or '(none reported)'}")
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
