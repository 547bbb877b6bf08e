"""``sparkdeploy status``: every selected host's models and their state, at a glance.

Each host answers for itself: one SSH round trip runs the sparkwatch package the deploy placed
(:data:`sparkdeploy.watchdog.STATUS_COMMAND`), which looks at its containers, probes each model
with a one-token completion and reads the watchdog's last action. Hosts are asked in parallel,
so the whole fleet takes about as long as its slowest host; a host that cannot answer is a row
saying why, never a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import paramiko

from sparkdeploy.tunnel import SshTunnel
from sparkdeploy.watchdog import STATUS_COMMAND

EXIT_SERVING, EXIT_ERROR, EXIT_NOT_SERVING = 0, 1, 2
HEALTHY_STATES = ("serving", "worker")
_GIB_KIB = 1024 * 1024
_HEADERS = ("HOST", "MODEL", "STATE", "TP", "UPTIME", "IMAGE", "RECIPE", "MEMORY USED/FREE", "LAST ACTION")

Runner = Callable[[str, Mapping[str, Any], float], tuple[int, str]]


@dataclass(frozen=True)
class HostStatus:
    """One host's answer (sparkwatch's JSON document), or why there is none."""

    host: str
    document: dict[str, Any] | None = None
    error: str | None = None

    @property
    def serving(self) -> bool:
        return self.document is not None and all(
            model["state"] in HEALTHY_STATES for model in self.document.get("models", []))

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "error": self.error, **(self.document or {"models": []})}


def status_hosts(selected: list[str], hosts_data: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The selected hosts that serve a model or are a cluster's node (the others run nothing)."""
    return [name for name in selected
            if hosts_data[name].get("recipe") or hosts_data[name].get("cluster_group")]


def run_over_ssh(host_name: str, data: Mapping[str, Any], timeout: float) -> tuple[int, str]:
    """The status command on the host, over the SSH connection pyinfra would make."""
    with SshTunnel(host_name, data, timeout=timeout) as connection:
        return connection.run(STATUS_COMMAND, timeout=timeout)


def collect(hosts: list[str], hosts_data: Mapping[str, Mapping[str, Any]],
            run: Runner = run_over_ssh) -> list[HostStatus]:
    """Every host's status, asked all at once."""
    def ask(name: str) -> HostStatus:
        data = hosts_data[name]
        try:
            code, output = run(name, data, float(data["status_timeout"]))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            return HostStatus(name, error=f"unreachable over SSH: {exc or type(exc).__name__}")
        return parse_answer(name, code, output)

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return list(pool.map(ask, hosts))


def parse_answer(host: str, code: int, output: str) -> HostStatus:
    """The host's JSON document, or what its output says went wrong."""
    if code == 0:
        for line in output.splitlines():
            if line.startswith("{"):
                try:
                    return HostStatus(host, json.loads(line))
                except ValueError:
                    break
        return HostStatus(host, error="the status command printed no status document")
    if "No module named sparkwatch" in output or "No such file" in output:
        return HostStatus(host, error="sparkwatch is not on the host yet: deploy it first")
    if "password is required" in output:
        return HostStatus(host, error="sudo asks for a password: status needs passwordless sudo")
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    return HostStatus(host, error=f"the status command exited {code}: {last[:160]}")


def exit_code(statuses: list[HostStatus]) -> int:
    return EXIT_SERVING if all(status.serving for status in statuses) else EXIT_NOT_SERVING


def format_table(statuses: list[HostStatus], now: float | None = None) -> str:
    """One row per host and model, fixed width; the last action's text closes each row."""
    now = time.time() if now is None else now
    rows = []
    for status in statuses:
        if status.document is None:
            rows.append((status.host, "-", "unreachable", "-", "-", "-", "-", "-", status.error or ""))
            continue
        memory = _memory(status.document.get("memory") or {})
        models = status.document.get("models") or []
        if not models:
            rows.append((status.host, "-", "no model", "-", "-", "-", "-", memory, ""))
        for model in models:
            rows.append((
                status.host, model["name"], model["state"], str(model.get("tensor_parallel") or "-"),
                duration(model.get("container_uptime_s")), _short_image(model), model.get("recipe") or "-",
                memory, _last_action(model, now) if model["state"] in HEALTHY_STATES
                else f"{model.get('detail', '')}; {_last_action(model, now)}".rstrip("; -"),
            ))
    widths = [max(len(row[index]) for row in [_HEADERS, *rows]) for index in range(len(_HEADERS) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
                     + "  " + row[-1] for row in [_HEADERS, *rows])


def duration(seconds: float | None) -> str:
    """``45s``, ``13m``, ``2h05m``, ``3d04h``."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _memory(memory: Mapping[str, int]) -> str:
    if not memory:
        return "-"
    total, free = memory["total_kib"], memory["available_kib"]
    return f"{(total - free) / _GIB_KIB:.1f}/{free / _GIB_KIB:.1f} GiB"


def _short_image(model: Mapping[str, Any]) -> str:
    image_id = (model.get("image_id") or "").removeprefix("sha256:")[:12]
    return f"{model.get('image') or '-'}" + (f" ({image_id})" if image_id else "")


def _last_action(model: Mapping[str, Any], now: float) -> str:
    action = model.get("last_action")
    if not action:
        return "-"
    return f"{duration(now - action['at'])} ago: {action['what']}"
