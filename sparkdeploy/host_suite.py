"""Check hosts against the testinfra suite in ``tests/host/`` (``sparkdeploy drift --verify``).

The suite reaches a host the way pyinfra does, through an OpenSSH client config written from
the host's inventory data, so operators point it at a real Spark by inventory name alone.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.data_values import one_line
from sparkdeploy.drift import inventory_secrets, redact

HOST_SUITE = PROJECT_ROOT / "tests" / "host"


def ssh_config(alias: str, data: Mapping[str, Any]) -> str:
    """An OpenSSH client config block that reaches an inventory host with its pyinfra data."""
    source = f"host {alias!r} data"
    hostname = one_line(data.get("ssh_hostname") or alias, source, "ssh_hostname")
    lines = [f"Host {_ssh_quote(one_line(alias, source, 'inventory name'))}",
             f"    HostName {_ssh_quote(hostname)}"]
    for key, option in (("ssh_user", "User"), ("ssh_port", "Port"), ("ssh_key", "IdentityFile"),
                        ("ssh_known_hosts_file", "UserKnownHostsFile")):
        if data.get(key):
            lines.append(f"    {option} {_ssh_quote(one_line(data[key], source, key))}")
    if str(data.get("ssh_strict_host_key_checking", "")).lower() in ("no", "off"):
        lines.append("    StrictHostKeyChecking no")
    return "\n".join(lines) + "\n"


def _ssh_quote(value: str) -> str:
    """An ssh_config argument: double-quoted when it has spaces (a path), as ssh_config(5) reads."""
    return f'"{value}"' if " " in value or "#" in value else value


def run_host_suite(host_names: Sequence[str], pytest_args: Sequence[str] = ()) -> int:
    """Run the suite against each host in turn, output redacted; return the worst exit code."""
    worst, secrets = 0, inventory_secrets()
    for name in host_names:
        with subprocess.Popen(
                [sys.executable, "-m", "pytest", str(HOST_SUITE), f"--inventory-host={name}",
                 "-p", "no:cacheprovider", *pytest_args], cwd=PROJECT_ROOT, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as suite:
            for line in suite.stdout:
                print(redact(line, secrets), end="", flush=True)
        worst = max(worst, suite.returncode)
    return worst
