"""A local Docker engine for the container sandbox, installed and started when missing.

CI runners are fresh Debian machines without systemd as PID 1 and without a running engine, so
``dockerd`` is started in the background there; where systemd runs, it starts the unit instead.
The engine is shared with whatever else uses it: it is never stopped here.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from sparkdeploy.sandbox.local import SandboxError, require_commands, run

DOCKER_SOCKET = Path("/var/run/docker.sock")
_START_TIMEOUT = 60.0


def docker(*args: str, check: bool = True, input: str | bytes | None = None,
           timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run the docker CLI against the local engine."""
    return run(["docker", *args], check=check, input=input, timeout=timeout)


def engine_running() -> bool:
    """Whether the local engine answers (any docker CLI version works: the API negotiates)."""
    try:
        return docker("version", "--format", "{{.Server.Version}}", check=False,
                      timeout=20).returncode == 0
    except SandboxError:
        return False


def ensure_engine(log_file: Path) -> None:
    """Make sure a local Docker engine is installed and answering on its socket."""
    if engine_running():
        return
    require_commands({"dockerd": "docker.io", "docker": "docker.io"})
    if Path("/run/systemd/system").is_dir():
        run(["systemctl", "start", "docker"])
    else:
        _start_detached(["dockerd"], log_file)
    deadline = time.monotonic() + _START_TIMEOUT
    while not engine_running():
        if time.monotonic() > deadline:
            raise SandboxError(f"dockerd did not answer within {_START_TIMEOUT:.0f} s; see {log_file}")
        time.sleep(0.5)


def _start_detached(command: Sequence[str], log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
