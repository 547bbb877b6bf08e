"""The stand-in NVIDIA toolkit apt repository, built and served while a sandbox is up.

It is built by ``tests/standins/build_toolkit_repo.py`` and served over plain HTTP (apt checks
its signature, as with NVIDIA's). Where it is served comes from ``toolkit_repo_url`` in
``group_data/sandbox.py``, the value the deploy uses, so the two cannot disagree; the backend
makes that URL's host name resolve inside the sandbox.
"""

from __future__ import annotations

import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.sandbox.local import (
    SandboxError,
    require_commands,
    run,
    runs,
    start_background,
    stop_process,
)

OUT_DIR = PROJECT_ROOT / ".sparkdeploy" / "standins" / "toolkit-repo"
BUILD_SCRIPT = PROJECT_ROOT / "tests" / "standins" / "build_toolkit_repo.py"
SANDBOX_GROUP_DATA = PROJECT_ROOT / "group_data" / "sandbox.py"


@dataclass(frozen=True)
class RepoEndpoint:
    """Where the sandbox expects the stand-in repository: a host name and a port."""

    hostname: str
    port: int


def repo_endpoint() -> RepoEndpoint:
    """Host name and port of ``toolkit_repo_url`` in the sandbox group's data."""
    url = urlsplit(runpy.run_path(str(SANDBOX_GROUP_DATA))["toolkit_repo_url"])
    if url.scheme != "http" or not url.hostname:
        raise SandboxError(f"{SANDBOX_GROUP_DATA}: toolkit_repo_url must be an http:// URL")
    return RepoEndpoint(url.hostname, url.port or 80)


def build_toolkit_repo() -> Path:
    """Build (or reuse) the signed repository; return the directory to serve."""
    require_commands({"dpkg-deb": "dpkg", "apt-ftparchive": "apt-utils", "gpg": "gnupg",
                      "gpgconf": "gnupg"})
    run([sys.executable, str(BUILD_SCRIPT), str(OUT_DIR)])
    return OUT_DIR / "repo"


def start(address: str, log_file: Path) -> dict[str, object]:
    """Build (or reuse) the repository and serve it on ``address``; return pid and address."""
    directory = build_toolkit_repo()
    port = repo_endpoint().port
    return {"pid": serve(directory, address, port, log_file), "address": f"{address}:{port}"}


def serve(directory: Path, address: str, port: int, log_file: Path) -> int:
    """Serve ``directory`` over HTTP on ``address:port`` in the background; return the pid."""
    return start_background([sys.executable, "-m", "http.server", "--bind", address, "--directory",
                             str(directory), str(port)], log_file,
                            f"the stand-in repository server on {address}:{port}")


def stop(pid: int | None) -> None:
    stop_process(pid, "http.server", str(OUT_DIR))


def is_running(pid: int | None) -> bool:
    return runs(pid, "http.server", str(OUT_DIR))
