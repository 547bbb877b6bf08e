"""Drift: which operations of the deploy would change a host now, from a dry pyinfra run.

pyinfra's own ``--dry`` exits 0 whether or not anything would change, and ``-y`` switches change
detection off, so this runs ``pyinfra INVENTORY DEPLOY --dry --json --data drift_check=true`` and
reads ``plan[*].hosts_with_change``. ``hosts_with_conditional_change`` is ignored: it lists every
``_if``-gated operation whether or not its condition will hold. Any pyinfra failure (a host
unreachable, invalid data) is an error, never "clean". Output passes through :func:`redact`, so
no secret of the inventory, supplied or generated, reaches a terminal or CI log.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra_cli.cli import _get_inventory_pattern_matches

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.errors import ConfigError
from sparkdeploy.inventory import hosts_data, load_inventory
from sparkdeploy.secrets import known_secrets

EXIT_CLEAN, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2
# pyinfra's per-host failure lines on stderr, e.g. "[h] Could not connect (...)".
_HOST_PROBLEM = re.compile(r"^\s*\[(?P<host>[^\]]+)\]\s+(?P<problem>(Could not|Error|Failed|"
                           r"Unexpected|Connection|Authentication).*)$")
_PYINFRA_ERROR = re.compile(r"^--> pyinfra error: (?P<problem>.+)$")
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?(?P<problem>\w*(?:Error|Exception): .+)$")


@dataclass(frozen=True)
class DriftReport:
    """The outcome for every targeted host."""

    hosts: list[str]
    # host -> labels ("Task | Operation") of the operations that would change it
    changes: dict[str, list[str]] = field(default_factory=dict)
    # host -> why it could not be checked (unreachable, failed while planning)
    host_errors: dict[str, str] = field(default_factory=dict)
    # problems not tied to one host (invalid data, a broken deploy file): nothing was checked
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.errors or self.host_errors:
            return EXIT_ERROR
        return EXIT_DRIFT if any(self.changes.values()) else EXIT_CLEAN


def pyinfra_executable() -> str:
    """The pyinfra of this Python environment (the project's venv), whatever PATH says."""
    return str(Path(sys.executable).with_name("pyinfra"))


def pyinfra_dry_command(limits: Sequence[str], inventory: str = "inventory.py",
                        deploy: str = "deploy.py") -> list[str]:
    """The dry run: ``--json`` (plain JSON on stdout, no prompt), never ``-y``."""
    command = [pyinfra_executable(), inventory, deploy,
               "--dry", "--json", "--data", "drift_check=true"]
    for limit in limits:
        command += ["--limit", limit]
    return command


def check_drift(limits: Sequence[str] = (), inventory: str = "inventory.py",
                deploy: str = "deploy.py") -> DriftReport:
    """Plan the deploy against the limited hosts and report what would change."""
    try:
        hosts = targeted_hosts(limits, inventory)
    except ConfigError as exc:
        return DriftReport([], errors=[str(exc)])
    if not hosts:
        return DriftReport([], errors=[f"no inventory host matches --limit {' '.join(limits)}"])
    result = subprocess.run(pyinfra_dry_command(limits, inventory, deploy), cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL)
    return parse_dry_run(hosts, result.returncode, result.stdout, result.stderr)


def targeted_hosts(limits: Sequence[str], inventory: str = "inventory.py") -> list[str]:
    """Host names ``--limit`` selects, as pyinfra selects them (group name, else glob)."""
    loaded = load_inventory(inventory)
    if not limits:
        return sorted(host.name for host in loaded)
    return sorted(host.name for host in _get_inventory_pattern_matches(loaded, limits, "--limit"))


def parse_dry_run(hosts: list[str], returncode: int, stdout: str, stderr: str) -> DriftReport:
    """Turn pyinfra's exit code, JSON plan and log into a report."""
    changes: dict[str, list[str]] = {host: [] for host in hosts}
    host_errors, errors = _problems(stderr) if returncode != 0 else ({}, [])
    try:
        plan = json.loads(stdout)["plan"] if stdout.strip() else []
    except (ValueError, KeyError, TypeError):
        plan = []
        errors.append("pyinfra printed something other than its JSON plan (does deploy code "
                      "print to stdout?)")
    for operation in plan:
        for host in operation.get("hosts_with_change", []):
            changes.setdefault(host, []).append(operation.get("name") or operation["op_hash"])
    if returncode != 0 and not errors and not host_errors:
        errors.append(f"pyinfra failed (exit {returncode}) without a message")
    return DriftReport(hosts, changes, host_errors, errors)


def _problems(stderr: str) -> tuple[dict[str, str], list[str]]:
    """What pyinfra's log says went wrong: per host, and otherwise."""
    host_errors: dict[str, str] = {}
    errors: list[str] = []
    for line in stderr.splitlines():
        if match := _HOST_PROBLEM.match(line):
            host_errors.setdefault(match["host"], match["problem"].strip())
        elif match := _PYINFRA_ERROR.match(line.strip()) or _EXCEPTION.match(line.strip()):
            errors.append(match["problem"].strip())
    if host_errors:
        # "No hosts remaining!" only repeats that every host failed.
        errors = [error for error in errors if not error.startswith("No hosts remaining")]
    return host_errors, list(dict.fromkeys(errors))


def format_report(report: DriftReport, secrets: Iterable[str] | None = None) -> str:
    """One table per host of the operations that would change it, then any errors; stored
    secrets (or ``secrets``) redacted."""
    blocks = []
    for host in sorted(report.changes):
        labels = report.changes[host]
        if host in report.host_errors:
            blocks.append(f"{host}: not checked: {report.host_errors[host]}")
            continue
        if not labels:
            blocks.append(f"{host}: {'not checked' if report.errors else 'no drift'}")
            continue
        rows = [label.split(" | ", 1) if " | " in label else ["", label] for label in labels]
        task_width = max(len("Task"), *(len(task) for task, _ in rows))
        lines = [f"{host}: {len(labels)} operation{'s' if len(labels) > 1 else ''} would change",
                 f"  {'Task':<{task_width}}  Operation",
                 f"  {'-' * task_width}  {'-' * max(len('Operation'), *(len(op) for _, op in rows))}"]
        lines += [f"  {task:<{task_width}}  {operation}" for task, operation in rows]
        blocks.append("\n".join(lines))
    if report.errors:
        blocks.append("errors:\n" + "\n".join(f"  {error}" for error in report.errors))
    return redact("\n\n".join(blocks), secrets)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Replace every secret in ``text`` with ``***``: ``secrets``, or else every secret of the
    inventory (supplied or generated). The one redaction all output passes through."""
    for secret in sorted(set(inventory_secrets() if secrets is None else secrets), key=len,
                         reverse=True):
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    return text


def inventory_secrets(inventory: str = "inventory.py") -> list[str]:
    """Every secret of the inventory's hosts, for :func:`redact`."""
    return known_secrets(hosts_data(load_inventory(inventory)))
