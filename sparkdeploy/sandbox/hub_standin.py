"""The stand-in Hugging Face hub, served to the sandbox while it is up.

The sandbox reaches neither huggingface.co nor (through this machine's TLS-inspecting proxy)
PyPI, so ``tests/standins/hub_server.py`` serves both things the weights step needs: a tiny
``openai/gpt-oss-120b`` repository (and the small ones the stand-in recipes also load) and a
PEP 503 index holding the pinned hub client's wheels for the sandbox's Python. Where it is
served comes from ``model_hub_endpoint`` in ``group_data/sandbox.py``, the value the deploy uses,
so the two cannot disagree; its host name is the one the backend already resolves to this
machine for the toolkit repository.
"""

from __future__ import annotations

import platform
import runpy
import sys
from pathlib import Path
from urllib.parse import urlsplit

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.sandbox.local import SandboxError, run, runs, start_background, stop_process
from sparkdeploy.weights import HUB_CLIENT

SERVER_SCRIPT = PROJECT_ROOT / "tests" / "standins" / "hub_server.py"
WHEEL_DIR = PROJECT_ROOT / ".sparkdeploy" / "standins" / "hub-wheels"
SANDBOX_GROUP_DATA = PROJECT_ROOT / "group_data" / "sandbox.py"
# Debian trixie's Python, which the sandbox image has.
SANDBOX_PYTHON = "3.13"
# Besides openai/gpt-oss-120b: the repositories tests/standins/recipes/ load (a model and its
# speculative draft model).
EXTRA_REPOS = ("Qwen/Qwen3.6-35B-A3B-FP8", "z-lab/Qwen3.6-35B-A3B-DFlash")


def hub_port() -> int:
    """The port of ``model_hub_endpoint`` in the sandbox group's data."""
    url = urlsplit(runpy.run_path(str(SANDBOX_GROUP_DATA))["model_hub_endpoint"])
    if url.scheme != "http" or not url.hostname or not url.port:
        raise SandboxError(f"{SANDBOX_GROUP_DATA}: model_hub_endpoint must be http://HOST:PORT")
    return url.port


def ensure_wheels(python_version: str = SANDBOX_PYTHON) -> Path:
    """Download the pinned hub client and its dependencies as wheels for the sandbox (once)."""
    target = WHEEL_DIR / f"py{python_version}-{platform.machine()}"
    marker = target / ".requirement"
    if marker.is_file() and marker.read_text() == HUB_CLIENT:
        return target
    target.mkdir(parents=True, exist_ok=True)
    machine = platform.machine()
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in (17, 28, 34)]
    run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
         *[arg for name in [*platforms, "manylinux2014_" + machine] for arg in ("--platform", name)],
         "--dest", str(target), HUB_CLIENT], timeout=600)
    marker.write_text(HUB_CLIENT)
    return target


def serve(address: str, log_file: Path) -> dict[str, object]:
    """Start the stand-in hub on ``address`` in the background; return its pid and address."""
    port = hub_port()
    command = [sys.executable, str(SERVER_SCRIPT), "--bind", address, "--port", str(port),
               "--wheels", str(ensure_wheels()),
               *[arg for repo in EXTRA_REPOS for arg in ("--extra-repo", repo)]]
    pid = start_background(command, log_file, f"the stand-in hub on {address}:{port}")
    return {"pid": pid, "address": f"{address}:{port}"}


def stop(pid: int | None) -> None:
    stop_process(pid, str(SERVER_SCRIPT))


def is_running(pid: int | None) -> bool:
    return runs(pid, str(SERVER_SCRIPT))
