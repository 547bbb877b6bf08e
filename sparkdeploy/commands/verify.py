"""``sparkdeploy verify``: check tool calling on every served model, directly and via the proxy.

Works against any inventory: the sandbox in CI, real Sparks for operators. Prints a PASS/FAIL
table and the servers' ``system_fingerprint``s; exits 1 when any check fails. Keys come from the
local secret store and are sent only as request headers, never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import paramiko

from sparkdeploy.commands.options import add_inventory_options, add_limit_option, load_hosts
from sparkdeploy.drift import redact
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import validate_inventory
from sparkdeploy.secrets import PROXY_SECRETS, VLLM_SECRETS, host_secrets, known_secrets
from sparkdeploy.tunnel import SshTunnel
from sparkdeploy.verify import (
    CheckResult,
    Target,
    check_proxy,
    check_rank,
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
        "not. Exit status 1 when any check fails.")
    add_limit_option(parser)
    add_inventory_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    inventory, data = load_hosts(args)
    selected = _select(inventory, list(data), args.limit)
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
                    tunnel = _tunnel(target.host_name, data[target.host_name], tunnels)
                    results.append(check_rank(tunnel.run, target.endpoint, target.models[0],
                                              target.container))
                    continue
                with _client(target, data[target.host_name], tunnels) as client:
                    for model in target.models:
                        if target.kind == "vllm":
                            seen: set[str] = set()
                            results += check_vllm(client, target.endpoint, model, seen)
                            if target.tensor_parallel > 1:
                                results.append(check_tensor_parallel(
                                    target.endpoint, model, target.tensor_parallel, seen))
                            fingerprints |= seen
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


def _select(inventory, names: list[str], limits: list[str]) -> list[str]:
    """Hosts matching any limit (a group name, else an fnmatch pattern on host names), or all."""
    if not limits:
        return names
    selected = []
    for limit in limits:
        group = [host.name for host in inventory.get_group(limit, default=[])]
        matches = group or fnmatch.filter(names, limit)
        if not matches:
            raise ConfigError("--limit", limit, "matches no host or group",
                              allowed=", ".join(sorted(names)) or "no hosts defined")
        selected += [name for name in matches if name not in selected]
    return selected


@contextlib.contextmanager
def _client(target: Target, data: Mapping[str, Any], tunnels: dict[str, SshTunnel]) -> Iterator[httpx.Client]:
    """An httpx client for the target, through an SSH tunnel when the host's data asks for one."""
    url = target.url
    if data.get("verify_via_ssh"):
        port = _tunnel(target.host_name, data, tunnels).forward(*target.host_port)
        url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers=_auth_headers(target, data),
                      timeout=float(data.get("verify_timeout") or 120)) as client:
        yield client


def _tunnel(host_name: str, data: Mapping[str, Any], tunnels: dict[str, SshTunnel]) -> SshTunnel:
    """One SSH connection per host, reused by every check of that host."""
    if host_name not in tunnels:
        tunnels[host_name] = SshTunnel(host_name, data)
    return tunnels[host_name]


def _auth_headers(target: Target, data: Mapping[str, Any]) -> dict[str, str]:
    if target.kind == "proxy":
        key = host_secrets(target.host_name, data, PROXY_SECRETS)["proxy_master_key"]
        return {"Authorization": f"Bearer {key}", "x-api-key": key,
                "anthropic-version": "2023-06-01"}
    if data.get("vllm_api_key_enabled"):
        key = host_secrets(target.host_name, data, VLLM_SECRETS)["vllm_api_key"]
        return {"Authorization": f"Bearer {key}"}
    return {}
