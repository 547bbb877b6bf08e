"""files/fetch_weights.py with the pinned hub client (its own venv) against the stand-in hub, on
loopback: what the deploy runs on a host, without a host. The sandbox suite covers the deploy
around it (tests/sandbox/test_weights.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sparkdeploy.weights import FETCH_SCRIPT, HUB_CLIENT

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".sparkdeploy" / "venvs" / "hub-client"
MODEL = "openai/gpt-oss-120b"
TOKEN = "hf_integrationToken0123456789"


def _hub_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hub_server", REPO / "tests/standins/hub_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hub_server"] = module
    spec.loader.exec_module(module)
    return module


hub_server = _hub_module()


@pytest.fixture(scope="session")
def hub_python() -> str:
    """The pinned hub client in its own venv, as on a host (installed once)."""
    stamp = VENV / f".{HUB_CLIENT}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin/pip"), "install", "--quiet", "--disable-pip-version-check",
                        HUB_CLIENT], check=True, timeout=600)
        stamp.touch()
    return str(VENV / "bin/python")


@pytest.fixture
def hub() -> Any:
    server = hub_server.HubServer([hub_server.tiny_gpt_oss()]).start()
    yield server
    server.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "hub").mkdir()
    return tmp_path


def fetch(python: str, hub: Any, home: Path, mode: str = "run", run_id: str = "r1",
          timeout: int = 120, revision: str | None = None, *extra: str) -> subprocess.CompletedProcess:
    args = [python, str(FETCH_SCRIPT), mode, "--repo", MODEL, "--cache-dir", str(home / "hub"),
            "--run-dir", str(home / "run"), "--timeout", str(timeout), "--run-id", run_id, *extra]
    if revision:
        args += ["--revision", revision]
    env = {**os.environ, "HF_HOME": str(home), "HF_ENDPOINT": hub.endpoint}
    env.pop("HF_TOKEN", None)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def status(home: Path) -> dict[str, Any]:
    return json.loads((home / "run" / "status.json").read_text())


def folder(home: Path) -> Path:
    return home / "hub" / "models--openai--gpt-oss-120b"


def test_download_records_the_file_list_and_the_ref(hub_python, hub, home):
    result = fetch(hub_python, hub, home)
    assert result.returncode == 0, result.stdout
    repo = hub.repo(MODEL)
    assert status(home)["state"] == "done" and status(home)["total_bytes"] == repo.total_bytes
    assert (folder(home) / "refs" / "main").read_text() == repo.commit
    tree = json.loads((folder(home) / "trees" / f"{repo.commit}.json").read_text())
    assert sorted(tree["files"]) == sorted(item.path for item in repo.files)
    snapshot = folder(home) / "snapshots" / repo.commit
    assert all((snapshot / item.path).read_bytes() == item.content for item in repo.files)


def test_a_complete_snapshot_downloads_nothing_again(hub_python, hub, home):
    assert fetch(hub_python, hub, home).returncode == 0
    hub.requests.clear()
    assert fetch(hub_python, hub, home, run_id="r2").returncode == 0
    assert hub.file_requests("GET") == [] and status(home)["needed_bytes"] == 0


def test_an_interrupted_download_resumes_where_it_stopped(hub_python, hub, home):
    hub.options.cut_after_bytes, hub.options.cut_count = 12 * 2**20, 1
    first = fetch(hub_python, hub, home)
    assert first.returncode == 1 and "the next deploy resumes it" in status(home)["message"]
    partial = list((folder(home) / "blobs").glob("*.incomplete"))
    assert [path.stat().st_size for path in partial] == [10 * 2**20]
    second = fetch(hub_python, hub, home, run_id="r2")
    assert second.returncode == 0, second.stdout
    assert [(r.range, r.status) for r in hub.file_requests() if r.range] == [("bytes=10485760-", 206)]
    assert not list((folder(home) / "blobs").glob("*.incomplete"))


def test_not_enough_disk_names_both_numbers_and_downloads_nothing(hub_python, hub, home):
    hub.options.advertised_lfs_size = 10**15
    result = fetch(hub_python, hub, home)
    assert result.returncode == 3
    message = status(home)["message"]
    assert status(home)["state"] == "no_space"
    assert f"({status(home)['needed_bytes']} bytes)" in message
    assert f"({status(home)['free_bytes']} bytes) are free" in message
    assert hub.file_requests("GET") == []


def test_a_gated_model_uses_the_token_file_and_never_logs_it(hub_python, hub, home):
    hub.repos[:] = [hub_server.tiny_gpt_oss(gated=True)]
    hub.options.token = TOKEN
    refused = fetch(hub_python, hub, home)
    assert refused.returncode == 1 and "GatedRepoError" in status(home)["message"]
    (home / "token").write_text(TOKEN)
    allowed = fetch(hub_python, hub, home, run_id="r2")
    assert allowed.returncode == 0, allowed.stdout
    assert TOKEN not in allowed.stdout + allowed.stderr + (home / "run" / "status.json").read_text()
    assert all(r.authorized for r in hub.file_requests("GET")[-12:])


def test_the_timeout_stops_the_download_and_keeps_what_it_has(hub_python, hub, home):
    hub.options.bytes_per_second = 2 * 2**20
    result = fetch(hub_python, hub, home, timeout=8)
    assert result.returncode == 124 and status(home)["state"] == "timeout"
    assert list((folder(home) / "blobs").glob("*.incomplete"))


def test_start_detaches_and_a_second_start_leaves_the_running_one_be(hub_python, hub, home):
    hub.options.bytes_per_second = 4 * 2**20
    assert fetch(hub_python, hub, home, mode="start", run_id="first").returncode == 0
    time.sleep(1.5)
    assert fetch(hub_python, hub, home, mode="start", run_id="second").returncode == 0
    deadline = time.monotonic() + 60
    while status(home)["state"] != "done" and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(0.5)
    assert status(home)["run_id"] == "first" and status(home)["state"] == "done"
    assert "run second leaves it be" in (home / "run" / "fetch.log").read_text()


def test_a_pinned_commit_is_fetched_without_moving_any_ref(hub_python, hub, home):
    commit = hub.repo(MODEL).commit
    assert fetch(hub_python, hub, home, revision=commit).returncode == 0
    assert status(home)["commit"] == commit
    assert not (folder(home) / "refs").exists() or not list((folder(home) / "refs").iterdir())
    assert (folder(home) / "snapshots" / commit / "config.json").is_file()


def test_weights_larger_than_vllms_share_are_refused_before_any_byte_is_fetched(hub_python, hub, home):
    result = fetch(hub_python, hub, home, "run", "r1", 120, None, "--max-weight-bytes", str(2**20),
                   "--limit-reason", "gpu_memory_utilization 0.8 of 128 GiB")
    assert result.returncode == 4
    assert status(home)["state"] == "too_large"
    assert ("the weights of openai/gpt-oss-120b are 0.0 GiB, more than vLLM's 0.0 GiB share of "
            "this host's memory (gpu_memory_utilization 0.8 of 128 GiB)") in status(home)["message"]
    assert hub.file_requests() == []
    assert not (folder(home) / "blobs").exists()


def test_weights_within_the_share_are_fetched(hub_python, hub, home):
    result = fetch(hub_python, hub, home, "run", "r1", 120, None, "--max-weight-bytes", str(2**30))
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(home)["state"] == "done"
