"""Apply the deploy and say what it changed: ``pyinfra … -y --json`` read back per host.

Used where a run must be judged, not just watched: the sandbox tests ("a second deploy changes
nothing"), the demo's summary and the benchmark (which also counts the remote commands).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.drift import pyinfra_executable, redact


@dataclass(frozen=True)
class ApplyReport:
    returncode: int
    seconds: float
    # host -> labels of the operations that changed it
    changes: dict[str, list[str]] = field(default_factory=dict)
    # host -> labels of the operations that failed on it
    failures: dict[str, list[str]] = field(default_factory=dict)
    # commands pyinfra sent to hosts (counted only when ``count_commands`` was asked for)
    remote_commands: int | None = None
    # pyinfra's log, secrets redacted
    log: str = ""

    @property
    def change_count(self) -> int:
        return sum(map(len, self.changes.values()))

    def failure_summary(self, log_lines: int = 40) -> str:
        """The failed operations and the end of pyinfra's log, for a test or CI message."""
        tail = "\n".join(self.log.splitlines()[-log_lines:])
        return f"deploy exited {self.returncode}; failed operations: {self.failures}\n{tail}"


def apply_deploy(limits: Sequence[str] = (), inventory: str = "inventory.py",
                 deploy: str = "deploy.py", count_commands: bool = False) -> ApplyReport:
    """Run the deploy for real (``-y``) and report changes and failures per host."""
    command = [pyinfra_executable(), inventory, deploy, "-y", "--json"]
    command += [arg for limit in limits for arg in ("--limit", limit)]
    if count_commands:
        command.append("-vv")
    started = time.monotonic()
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                            check=False, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    changes: dict[str, list[str]] = {}
    failures: dict[str, list[str]] = {}
    try:
        operations = (json.loads(result.stdout).get("results") or {}).get("operations", [])
    except ValueError:
        operations = []
    for operation in operations:
        label = operation.get("name") or operation.get("op_hash", "?")
        for host in operation.get("success", []):
            changes.setdefault(host, []).append(label)
        for host in operation.get("error", []):
            failures.setdefault(host, []).append(label)
    commands = result.stderr.count(">>> ") if count_commands else None
    return ApplyReport(result.returncode, seconds, changes, failures, commands,
                       redact(result.stderr))


def run_sparkdeploy(*args: str) -> subprocess.CompletedProcess:
    """Run the project's console script (beside this Python) as an operator runs it."""
    return subprocess.run([str(Path(sys.executable).with_name("sparkdeploy")), *args],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
