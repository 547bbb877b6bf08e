"""``/etc/docker/daemon.json``: add the NVIDIA runtime without touching anything else in it.

Tools that write daemon.json wholesale erase keys other tools rely on (geerlingguy.docker#84,
nvidia-docker#490), so the deploy parses what is there, adds ``runtimes.nvidia`` exactly as
``nvidia-ctk runtime configure --runtime=docker`` would, and writes only when that entry is
missing or wrong. A dockerd flag (typically from a ``docker.service.d`` drop-in) that sets a key
daemon.json also sets makes dockerd refuse to start (deepops#305), so such overlaps are reported.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from typing import Any

PATH = "/etc/docker/daemon.json"
DROPIN_DIR = "/etc/systemd/system/docker.service.d"
# docker.service with its drop-ins, as systemd merges them.
UNIT_TEXT_COMMAND = "systemctl cat docker.service 2>/dev/null || true"
NVIDIA_RUNTIME = {"args": [], "path": "nvidia-container-runtime"}
# nvidia-ctk writes the bare name for Docker; older installs used the absolute path.
ACCEPTED_RUNTIME_PATHS = ("nvidia-container-runtime", "/usr/bin/nvidia-container-runtime")

# dockerd flags whose daemon.json key is not simply the flag name (repeatable flags pluralise).
_FLAG_KEYS = {
    "-H": "hosts",
    "--host": "hosts",
    "--add-runtime": "runtimes",
    "--label": "labels",
    "--dns": "dns",
    "--dns-opt": "dns-opts",
    "--dns-search": "dns-search",
    "--exec-opt": "exec-opts",
    "--log-opt": "log-opts",
    "--storage-opt": "storage-opts",
    "--insecure-registry": "insecure-registries",
    "--registry-mirror": "registry-mirrors",
    "--default-ulimit": "default-ulimits",
    "--authorization-plugin": "authorization-plugins",
    "--default-address-pool": "default-address-pools",
    "--allow-nondistributable-artifacts": "allow-nondistributable-artifacts",
    "-D": "debug",
    "-l": "log-level",
    "-G": "group",
    "-b": "bridge",
    "-p": "pidfile",
}


class DaemonJsonError(ValueError):
    """daemon.json exists but is not a JSON object; the deploy will not guess how to fix it."""


def parse(text: str | None) -> dict[str, Any]:
    """The current settings; an absent or empty file means none."""
    if text is None or not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise DaemonJsonError(f"{PATH} is not valid JSON ({exc}); fix or remove it by hand") from exc
    if not isinstance(config, dict):
        raise DaemonJsonError(f"{PATH} holds a JSON {type(config).__name__}, not an object")
    return config


def has_nvidia_runtime(config: dict[str, Any]) -> bool:
    runtimes = config.get("runtimes")
    nvidia = runtimes.get("nvidia") if isinstance(runtimes, dict) else None
    return isinstance(nvidia, dict) and nvidia.get("path") in ACCEPTED_RUNTIME_PATHS


def with_nvidia_runtime(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with ``runtimes.nvidia`` set; every other key is kept as it was."""
    merged = dict(config)
    runtimes = merged.get("runtimes")
    merged["runtimes"] = {**(runtimes if isinstance(runtimes, dict) else {}),
                          "nvidia": dict(NVIDIA_RUNTIME)}
    return merged


def render(config: dict[str, Any]) -> str:
    """nvidia-ctk's layout (4-space indent, sorted keys), so the two tools do not fight."""
    return json.dumps(config, indent=4, sort_keys=True) + "\n"


def dockerd_flag_keys(unit_text: str) -> set[str]:
    """daemon.json keys that the ``dockerd`` flags of the effective ExecStart set."""
    keys = set()
    for command in _exec_start_commands(unit_text):
        words = _split(command)
        if not any(word.rsplit("/", 1)[-1] == "dockerd" for word in words):
            continue
        for word in words:
            if word.startswith("-") and word != "-":
                flag = word.split("=", 1)[0]
                keys.add(_FLAG_KEYS.get(flag, flag.lstrip("-")))
    return keys


def flags_add_nvidia_runtime(unit_text: str) -> bool:
    """Whether dockerd's flags already register the nvidia runtime (old DGX OS drop-ins)."""
    for command in _exec_start_commands(unit_text):
        words = _split(command)
        for index, word in enumerate(words):
            value = word.partition("=")[2] if word.startswith("--add-runtime=") else (
                words[index + 1] if word == "--add-runtime" and index + 1 < len(words) else "")
            if value.startswith("nvidia="):
                return True
    return False


def override_conflicts(unit_text: str, config: dict[str, Any]) -> list[str]:
    """Keys set both by dockerd's flags and in daemon.json (dockerd refuses to start)."""
    return sorted(dockerd_flag_keys(unit_text) & set(config))


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _exec_start_commands(text: str) -> Iterable[str]:
    """The effective ExecStart commands of unit text (``systemctl cat``: the unit, then its
    drop-ins in order), where an empty ``ExecStart=`` discards the ones before it."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        logical.append(line)
    commands: list[str] = []
    for line in logical:
        key, sep, value = line.partition("=")
        if sep and key.strip() == "ExecStart":
            if value.strip():
                commands.append(value.strip().lstrip("-@+!:"))
            else:
                commands.clear()
    return commands
