"""Commands on this machine (the workstation or CI runner) and the Debian packages they need.

The sandbox must come up on a fresh Debian machine with nothing but Python, so every tool it
drives (docker, mmdebstrap, apt-ftparchive, gpg) is installed from Debian's packages on first use.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


class SandboxError(Exception):
    """The sandbox cannot be built, started or reached; the message says what to do."""


def run(command: Sequence[str], *, check: bool = True, capture: bool = True,
        input: str | bytes | None = None, env: Mapping[str, str] | None = None,
        timeout: float | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run a local command; on failure raise :class:`SandboxError` with its stderr tail."""
    try:
        result = subprocess.run(
            list(command), capture_output=capture, input=input, timeout=timeout, cwd=cwd,
            text=not isinstance(input, bytes), env={**os.environ, **(env or {})},
        )
    except FileNotFoundError as exc:
        raise SandboxError(f"{command[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"{' '.join(command[:3])} … timed out after {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        tail = (result.stderr or "").strip().splitlines()[-15:] if capture else []
        raise SandboxError(f"`{' '.join(command[:4])} …` failed (exit {result.returncode})"
                           + ("".join(f"\n  {line}" for line in tail)))
    return result


def require_commands(packages_by_command: Mapping[str, str]) -> None:
    """Install the Debian package behind each missing command (apt-get update first)."""
    missing = sorted({package for command, package in packages_by_command.items()
                      if shutil.which(command) is None})
    if missing:
        apt_install(missing)


def apt_install(packages: Sequence[str]) -> None:
    """``apt-get install`` on this machine; needs root, as on CI runners."""
    if os.geteuid() != 0:
        raise SandboxError(f"missing Debian packages: {' '.join(packages)}; install them "
                           "(sudo apt-get install …) or run as root")
    run(["apt-get", "update", "-q"], env=_APT_ENV)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=_APT_ENV)


def start_background(command: Sequence[str], log_file: Path, what: str) -> int:
    """Start a stand-in server detached from this process, output to ``log_file``; its pid.

    It must still run a second later (a taken port or a bad config ends it at once).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        server = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        server.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        return server.pid
    raise SandboxError(f"{what} did not start; see {log_file}")


def runs(pid: int | None, *markers: str) -> bool:
    """Whether process ``pid`` still runs a command line holding every marker (not a reused pid)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return all(marker.encode() in cmdline for marker in markers)


def stop_process(pid: int | None, *markers: str) -> None:
    """Stop a server started by :func:`start_background`, if ``pid`` still is that server."""
    if runs(pid, *markers):
        os.kill(pid, signal.SIGTERM)
