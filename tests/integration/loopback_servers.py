"""Starting and stopping the servers the integration tests talk to, all on loopback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
STANDIN_SCRIPT = REPO / "tests" / "standins" / "model_server.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float, log: Path) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail if the process dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} never came up: the process exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} not up after {seconds} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def standin_server(workdir: Path, served_names: list[str], *options: str) -> Iterator[int]:
    """The stand-in vLLM on a free loopback port, logging request bodies to workdir/requests.jsonl."""
    port, log = free_port(), workdir / "server.log"
    command = [sys.executable, str(STANDIN_SCRIPT), "--host", "127.0.0.1", "--port", str(port),
               "--served-model-name", *served_names, "--request-log", str(workdir / "requests.jsonl"),
               *options]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, 20, log)
        yield port
    finally:
        stop(process)
