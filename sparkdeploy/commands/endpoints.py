"""Reaching the selected hosts' vLLM and proxy endpoints: host selection, SSH tunnels, keys.

Shared by ``verify`` and ``bench``. Keys come from the local secret store and are sent only as
request headers (or handed to a child process through its environment), never printed.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from pyinfra.api import Inventory

from sparkdeploy.errors import ConfigError
from sparkdeploy.secrets import PROXY_SECRETS, RELAY_SECRETS, VLLM_SECRETS, host_secrets
from sparkdeploy.tunnel import SshTunnel
from sparkdeploy.verify import Target


def select_hosts(inventory: Inventory, names: list[str], limits: list[str]) -> list[str]:
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


def open_tunnel(host_name: str, data: Mapping[str, Any], tunnels: dict[str, SshTunnel]) -> SshTunnel:
    """One SSH connection per host, reused by everything done on that host."""
    if host_name not in tunnels:
        tunnels[host_name] = SshTunnel(host_name, data)
    return tunnels[host_name]


def endpoint_url(target: Target, data: Mapping[str, Any], tunnels: dict[str, SshTunnel]) -> str:
    """The target's root URL from here: through an SSH tunnel when the host's data asks for one."""
    if data.get("verify_via_ssh"):
        port = open_tunnel(target.host_name, data, tunnels).forward(*target.host_port)
        return f"http://127.0.0.1:{port}"
    return target.url


def endpoint_key(target: Target, data: Mapping[str, Any]) -> str | None:
    """The bearer key the target requires: the proxy's master key, the relay's, vLLM's when enabled."""
    if target.kind == "proxy":
        return host_secrets(target.host_name, data, PROXY_SECRETS)["proxy_master_key"]
    if target.kind == "relay":
        return host_secrets(target.host_name, data, RELAY_SECRETS)["relay_api_key"]
    if data.get("vllm_api_key_enabled"):
        return host_secrets(target.host_name, data, VLLM_SECRETS)["vllm_api_key"]
    return None


def auth_headers(target: Target, data: Mapping[str, Any]) -> dict[str, str]:
    key = endpoint_key(target, data)
    if key is None:
        return {}
    headers = {"Authorization": f"Bearer {key}"}
    if target.kind == "proxy":
        headers.update({"x-api-key": key, "anthropic-version": "2023-06-01"})
    return headers


@contextlib.contextmanager
def endpoint_client(target: Target, data: Mapping[str, Any], tunnels: dict[str, SshTunnel],
                    url: str | None = None) -> Iterator[httpx.Client]:
    """An httpx client for the target (at ``url`` when already known) with its auth headers."""
    with httpx.Client(base_url=url or endpoint_url(target, data, tunnels), headers=auth_headers(target, data),
                      timeout=float(data.get("verify_timeout") or 120)) as client:
        yield client
