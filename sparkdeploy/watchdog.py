"""The watchdog and watcher settings each host gets, from its data and the inventory's.

The host side is the ``sparkwatch`` package (files/sparkwatch, stdlib only), placed under
``INSTALL_DIR`` and run by systemd timers. This module decides what it is told: which models
to probe (heads only: a worker rank has no HTTP server), how patient to be, and which hosts a
watcher watches. The hook and the power-cycle commands are secrets: they go to a 0600 file of
their own, never into the settings a ``--diff`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.errors import ConfigError
from sparkdeploy.secret_values import reveal
from sparkdeploy.vllm_service import VllmService

PACKAGE_SOURCE = PROJECT_ROOT / "files" / "sparkwatch"
INSTALL_DIR = "/usr/local/lib/sparkdeploy"
CONFIG_DIR = "/etc/sparkdeploy/watch"
CONFIG_FILE = f"{CONFIG_DIR}/config.json"
SECRETS_FILE = f"{CONFIG_DIR}/secrets.json"
STATE_DIR = "/var/lib/sparkdeploy/watch"
# what `sparkdeploy status` runs over SSH: this host's models and their state, as JSON
STATUS_COMMAND = f"sudo -n env PYTHONPATH={INSTALL_DIR} python3 -m sparkwatch status"

_COUNTS = {
    "watchdog_interval": 1, "watchdog_probe_timeout": 1, "watchdog_failures_before_restart": 1,
    "watchdog_start_grace": 0, "watchdog_max_restarts": 0, "watchdog_restart_window": 1,
    "watcher_interval": 1, "watcher_timeout": 1, "watcher_failures_before_power_cycle": 1,
    "watcher_max_power_cycles": 0, "watcher_window": 1, "watcher_boot_grace": 0,
    "watcher_command_timeout": 1,
}
_GPU_CLOCK_MHZ = (300, 3100)  # catches typos such as 21500; upstream's guard caps GB10 at 2150


def package_files() -> dict[str, str]:
    """The sparkwatch modules by file name."""
    return {path.name: path.read_text() for path in sorted(PACKAGE_SOURCE.glob("*.py"))}


def check_watch_data(host_name: str, data: Mapping[str, Any],
                     hosts_data: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse watchdog and watcher values that cannot run, before any host is touched."""
    source = f"host {host_name!r} data"
    for key, minimum in _COUNTS.items():
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(source, key, f"{value!r} is not a whole number of at least {minimum}",
                              allowed=f"an integer >= {minimum}")
    url = data.get("watchdog_notify_url")
    if url and urlsplit(str(reveal(url))).scheme not in ("http", "https"):
        raise ConfigError(source, "watchdog_notify_url", "not an http(s) URL",
                          allowed="https://… (a webhook), or None")
    mhz = data.get("gpu_clock_limit_mhz")
    if mhz is not None and (isinstance(mhz, bool) or not isinstance(mhz, int)
                            or not _GPU_CLOCK_MHZ[0] <= mhz <= _GPU_CLOCK_MHZ[1]):
        raise ConfigError(source, "gpu_clock_limit_mhz", f"{mhz!r} is not a GPU clock in MHz",
                          allowed=f"None, or {_GPU_CLOCK_MHZ[0]} to {_GPU_CLOCK_MHZ[1]} (upstream: 2150)")
    if data.get("watcher_enabled"):
        watched_hosts(host_name, hosts_data)


def watched_hosts(host_name: str, hosts_data: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The hosts a watcher on ``host_name`` watches: named, or every other host with a recipe."""
    data = hosts_data[host_name]
    source = f"host {host_name!r} data"
    named = list(data.get("watcher_hosts") or [])
    if host_name in named:
        raise ConfigError(source, "watcher_hosts", f"{host_name!r} is the watcher itself: a host "
                          "that is down cannot power-cycle itself", allowed="other inventory hosts")
    unknown = [name for name in named if name not in hosts_data]
    if unknown:
        raise ConfigError(source, "watcher_hosts", f"{', '.join(map(repr, unknown))} not in the "
                          "inventory", allowed=", ".join(sorted(set(hosts_data) - {host_name})))
    targets = named or [name for name, other in hosts_data.items()
                        if name != host_name and other.get("recipe")]
    if not targets:
        raise ConfigError(source, "watcher_enabled", "no other host serves a model, so there is "
                          "nothing to watch", allowed="false, or name hosts in watcher_hosts")
    for name in targets:
        if not hosts_data[name].get("power_cycle_command"):
            raise ConfigError(f"host {name!r} data", "power_cycle_command",
                              f"not set, but the watcher on {host_name!r} watches this host",
                              allowed="the command that power-cycles it (smart plug, IPMI)")
    return targets


def watch_config(host_name: str, hosts_data: Mapping[str, Mapping[str, Any]],
                 services: Mapping[str, tuple[VllmService, ...]]) -> dict[str, Any]:
    """config.json for ``host_name`` (no secrets: those are in :func:`watch_secrets`)."""
    data = hosts_data[host_name]
    models = services.get(host_name, ())
    watchdog = {key.removeprefix("watchdog_"): data[key] for key in (
        "watchdog_enabled", "watchdog_interval", "watchdog_probe_timeout",
        "watchdog_failures_before_restart", "watchdog_start_grace", "watchdog_max_restarts",
        "watchdog_restart_window", "watchdog_use_metrics")}
    watchdog["recovery_timeout"] = data["vllm_health_timeout"]
    watchdog["poll_interval"] = data["deploy_poll_interval"]
    watchdog["enabled"] = bool(watchdog["enabled"] and models)
    watcher: dict[str, Any] = {"enabled": bool(data.get("watcher_enabled")), "targets": []}
    if watcher["enabled"]:
        watcher.update({key.removeprefix("watcher_"): data[key] for key in (
            "watcher_interval", "watcher_timeout", "watcher_failures_before_power_cycle",
            "watcher_max_power_cycles", "watcher_window", "watcher_boot_grace",
            "watcher_command_timeout")})
        watcher["targets"] = [_target(name, hosts_data[name], services.get(name, ()))
                              for name in watched_hosts(host_name, hosts_data)]
    return {
        "host": host_name,
        "state_dir": STATE_DIR,
        "drop_page_cache": bool(data.get("host_can_write_sysctl")),
        "watchdog": watchdog,
        "models": [_model(service, data) for service in models],
        "watcher": watcher,
    }


def watch_secrets(host_name: str, hosts_data: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """secrets.json: the hook, and the power-cycle commands of the hosts this one watches."""
    data = hosts_data[host_name]
    secrets: dict[str, Any] = {}
    for key, name in (("watchdog_notify_url", "notify_url"), ("watchdog_notify_command", "notify_command")):
        if data.get(key):
            secrets[name] = str(reveal(data[key]))
    if data.get("watcher_enabled"):
        secrets["power_cycle"] = {name: str(reveal(hosts_data[name]["power_cycle_command"]))
                                  for name in watched_hosts(host_name, hosts_data)}
    return secrets


def to_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _model(service: VllmService, data: Mapping[str, Any]) -> dict[str, Any]:
    head = service.serves_http
    directory = service.compose_dir
    return {
        "name": service.served_name,
        "recipe": str(service.data["recipe"]),
        "url": service.local_url,
        "container": service.container_name,
        "compose_dir": directory,
        "api_key_file": f"{directory}/secrets.env" if data.get("vllm_api_key_enabled") else None,
        "role": "head" if head else "worker",
        "tensor_parallel": _tensor_parallel(service),
    }


def _tensor_parallel(service: VllmService) -> int | None:
    size = service.values.get("tensor_parallel")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _target(name: str, data: Mapping[str, Any], models: tuple[VllmService, ...]) -> dict[str, Any]:
    """A watched Spark: alive while its SSH banner or its recipe's /health answers."""
    address = data.get("ssh_hostname") or name
    health_url = None
    service = models[0] if models else None
    if service is not None and service.serves_http and data.get("vllm_expose_to_lan"):
        health_url = f"http://{data.get('vllm_address') or address}:{service.port}"
    return {"host": name, "address": address, "ssh_port": int(data.get("ssh_port") or 22),
            "health_url": health_url}
