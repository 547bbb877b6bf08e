"""Model weights against the running sandbox (start it: ``sparkdeploy sandbox up``).

The deploy's weights step (``tests/sandbox/weights_deploy.py``: the cache directories and
``tasks.weights``) runs with pyinfra against the sandbox, whose recipe is the real
``openai-gpt-oss-120b``. Its hub is the stand-in (``tests/standins/hub_server.py``) serving a
tiny repository under that id, started here on the address where the sandbox reaches this
machine (the Docker bridge's gateway, never a LAN address) so each test can cut, slow down or
inflate what it serves. Covered: first download, a converged re-run with no change, an
interrupted download resumed with an HTTP Range request, not enough disk, a gated model with a
token, and the NFS model store (a local directory standing in for the mount). The module leaves
the sandbox with the complete snapshot, as a deploy would.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sparkdeploy.host_suite import ssh_config
from sparkdeploy.inventory import hosts_data, load_inventory
from sparkdeploy.model_repos import ModelRepo
from sparkdeploy.sandbox import hub_standin, toolkit_repo
from sparkdeploy.sandbox.state import load_state
from sparkdeploy.weights import check_snapshot, parse_listing, weights_plan

REPO = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
WEIGHTS_DEPLOY = "tests/sandbox/weights_deploy.py"
MODEL = "openai/gpt-oss-120b"
HOST = "sandbox"
TOKEN = "hf_sandboxTestToken0123456789"
_SSH_ATTEMPTS = 5
_PARTIAL_BYTES = 10 * 2**20  # the hub client writes in 10 MiB chunks: what a cut at 12 MiB keeps


def _load_hub_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hub_server", REPO / "tests/standins/hub_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hub_server"] = module
    spec.loader.exec_module(module)
    return module


hub_server = _load_hub_module()


@dataclass
class Sandbox:
    data: dict[str, Any]
    ssh_config_file: Path
    gateway: str

    def run(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A command on the sandbox as root, over SSH like pyinfra (retried while sshd restarts)."""
        for _ in range(_SSH_ATTEMPTS):
            result = subprocess.run(
                ["ssh", "-F", str(self.ssh_config_file), "-o", "BatchMode=yes", HOST,
                 "sudo sh -c " + shlex.quote(command)], capture_output=True, text=True, timeout=120)
            if result.returncode != 255:
                break
            time.sleep(2)
        if check and result.returncode != 0:
            pytest.fail(f"on the sandbox: {command}\n{result.stdout}{result.stderr}")
        return result


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    state = load_state()
    data = hosts_data(load_inventory("inventory.py")).get(HOST)
    if state is None or data is None:
        pytest.fail("no sandbox is up: start it with `sparkdeploy sandbox up`")
    config = tmp_path_factory.mktemp("ssh") / "ssh_config"
    config.write_text(ssh_config(HOST, data))
    gateway = str(state.repo_server.get("address", "")).rpartition(":")[0]
    if not gateway:
        pytest.fail("the sandbox state records no address where it reaches this machine")
    return Sandbox(data, config, gateway)


@pytest.fixture(scope="module")
def hub(target: Sandbox) -> Iterator[Any]:
    server = hub_server.HubServer([hub_server.tiny_gpt_oss()], bind=target.gateway,
                                  wheel_dir=hub_standin.ensure_wheels()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plan(target: Sandbox):
    return weights_plan(HOST, target.data, ModelRepo(MODEL, "model"), "recipes/openai-gpt-oss-120b.yaml")


@pytest.fixture
def fresh(target: Sandbox, hub: Any, plan) -> Any:
    """No weights in the sandbox's cache, a hub serving normally, an empty request log."""
    _wait_until_no_download_runs(target, plan)
    target.run(f"rm -rf {plan.repo_dir} {plan.run_dir}/status.json {plan.token_path}")
    hub.options = hub_server.HubOptions()
    hub.requests.clear()
    return hub


def deploy(hub: Any, *data: str, dry: bool = False, deploy_file: str = WEIGHTS_DEPLOY,
           show_commands: bool = False) -> subprocess.CompletedProcess:
    port = hub.endpoint.rsplit(":", 1)[1]
    endpoint = f"http://{toolkit_repo.repo_endpoint().hostname}:{port}"
    args = [PYINFRA, "inventory.py", deploy_file, "--limit", HOST,
            "--data", f"model_hub_endpoint={endpoint}",
            "--data", f"model_pip_index_url={endpoint}/simple",
            "--data", "model_progress_interval=1",
            # the recipe's weights alone: this hub serves only them (the model beside it is
            # tests/sandbox/test_models.py's)
            "--data", "models=[]"]
    for item in data:
        args += ["--data", item]
    args += ["--dry", "--json"] if dry else ["-y"]
    args += ["-vv"] if show_commands else []
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)


def snapshot_verdict(target: Sandbox, plan) -> Any:
    from sparkdeploy.facts import HubSnapshot

    command = HubSnapshot().command(plan.cache_dir, plan.repo_id, plan.revision)
    return check_snapshot(parse_listing(target.run(command).stdout.splitlines()), plan)


def _wait_until_no_download_runs(target: Sandbox, plan, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = target.run(f"cat {plan.run_dir}/status.json 2>/dev/null || true").stdout
        status = json.loads(text) if text.strip() else {}
        if status.get("state") not in ("checking", "downloading"):
            return
        if target.run(f"test -d /proc/{int(status.get('pid', 0))}", check=False).returncode != 0:
            return
        time.sleep(2)
    pytest.fail("a download keeps running in the sandbox")


def _changed(plan_json: str) -> list[str]:
    return [op["name"] for op in json.loads(plan_json)["plan"] if op["hosts_with_change"]]


def test_first_download_fetches_every_file_and_shows_progress(target, fresh, plan, record_property):
    started = time.monotonic()
    result = deploy(fresh)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fetching openai/gpt-oss-120b:" in result.stderr
    assert "openai/gpt-oss-120b complete" in result.stderr
    verdict = snapshot_verdict(target, plan)
    assert verdict.complete, verdict.reason
    repo = fresh.repo(MODEL)
    fetched = {r.path.rsplit(f"/resolve/{repo.commit}/", 1)[-1] for r in fresh.file_requests()
               if r.status == 200}
    assert fetched == {item.path for item in repo.files}
    record_property("first_download_seconds", round(seconds, 1))
    record_property("first_download_bytes", repo.total_bytes)
    print(f"\nfirst download: {repo.total_bytes} bytes in {seconds:.1f} s (whole pyinfra run)")


def test_converged_rerun_changes_nothing_and_downloads_nothing(target, hub, plan):
    if not snapshot_verdict(target, plan).complete:
        assert deploy(hub).returncode == 0
    hub.requests.clear()
    dry = deploy(hub, dry=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert _changed(dry.stdout) == []
    names = [op["name"] for op in json.loads(dry.stdout)["plan"]]
    assert not any("Fetch the" in name for name in names), "a complete snapshot must yield no fetch"
    applied = deploy(hub)
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert hub.requests == [], "a converged run must not reach the hub"
    full = deploy(hub, dry=True, deploy_file="deploy.py")
    assert full.returncode == 0, full.stderr[-3000:]
    assert [name for name in _changed(full.stdout) if name.startswith("Model weights")] == []


def test_interrupted_download_resumes_with_a_range_request(target, fresh, plan):
    fresh.options.cut_after_bytes, fresh.options.cut_count = 12 * 2**20, 1
    first = deploy(fresh)
    assert first.returncode != 0
    assert "interrupted" in first.stderr and "the next deploy resumes it" in first.stderr
    partial = target.run(f"find {plan.repo_dir}/blobs -name '*.incomplete' -printf '%s\\n'").stdout.split()
    assert str(_PARTIAL_BYTES) in partial
    second = deploy(fresh)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = [r for r in fresh.file_requests() if r.range]
    assert [(r.range, r.status) for r in resumed] == [(f"bytes={_PARTIAL_BYTES}-", 206)]
    assert snapshot_verdict(target, plan).complete


def test_weights_larger_than_vllms_share_are_refused_before_downloading(target, fresh, plan):
    fresh.options.advertised_lfs_size = 10**12
    result = deploy(fresh)
    assert result.returncode != 0
    line = next(line for line in result.stderr.splitlines() if "cannot load here" in line)
    # the sandbox reserves 69 GiB for its recipe (vllm_memory_gib)
    assert "the weights of openai/gpt-oss-120b are 1862.6 GiB, more than vLLM's 69.0 GiB" in line
    assert "(vllm_memory_gib 69)" in line
    assert [r for r in fresh.file_requests() if r.path.endswith(".safetensors")] == []
    fresh.options.advertised_lfs_size = None


def test_not_enough_disk_is_an_error_naming_both_numbers(target, fresh, plan):
    fresh.options.advertised_lfs_size = 10**15
    # a memory pool that holds any weights: the disk check is the one that refuses
    result = deploy(fresh, "vllm_memory_gib=100000000", "spark_usable_memory_gib=1000000000")
    assert result.returncode != 0
    line = next(line for line in result.stderr.splitlines() if "not enough disk space" in line)
    assert "needs 2000.0 TB (2000000000" in line and "bytes) are free on the filesystem of" in line
    assert [r for r in fresh.file_requests() if r.path.endswith(".safetensors")] == []
    fresh.options.advertised_lfs_size = None
    assert deploy(fresh).returncode == 0


def test_gated_model_needs_the_token_which_never_shows(target, fresh, plan):
    fresh.repos[:] = [hub_server.tiny_gpt_oss(gated=True)]
    fresh.options.token = TOKEN
    try:
        refused = deploy(fresh)
        assert refused.returncode != 0 and "GatedRepoError" in refused.stderr
        assert "supply model_hub_token" in refused.stderr
        result = deploy(fresh, f"model_hub_token={TOKEN}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert TOKEN not in result.stdout + result.stderr
        assert all(r.authorized for r in fresh.file_requests("GET"))
        owner = target.run(f"stat -c '%U %a' {plan.token_path}").stdout.split()
        assert owner == [plan.user, "600"]
        assert TOKEN not in target.run(f"cat {plan.run_dir}/fetch.log").stdout
    finally:
        fresh.repos[:] = [hub_server.tiny_gpt_oss()]
        target.run(f"rm -f {plan.token_path}")


def test_the_token_is_placed_by_the_service_user_never_through_a_link(target, fresh, plan):
    """A link the service user plants at the token path leads nowhere: the file is replaced."""
    victim = "/root/sparkdeploy-link-victim"
    target.run(f"printf 'root only\\n' > {victim} && chmod 0600 {victim}"
               f" && ln -sfn {victim} {plan.token_path} && chown -h {plan.user} {plan.token_path}")
    try:
        result = deploy(fresh, f"model_hub_token={TOKEN}", show_commands=True)
        assert result.returncode == 0, result.stderr[-3000:]
        assert TOKEN not in result.stdout + result.stderr
        assert target.run(f"cat {victim}; stat -c '%U %a' {victim}").stdout.split() == [
            "root", "only", "root", "600"]
        placed = target.run(f"stat -c '%U %a %F' {plan.token_path}").stdout.split()
        assert placed == [plan.user, "600", "regular", "file"]
        writes = [line.split(">>> ", 1)[1] for line in result.stderr.splitlines()
                  if ">>> " in line and plan.token_path in line and "test -e" not in line]
        assert writes and all(f"runuser -u {plan.user} -- sh -c " in w for w in writes)
        assert "umask 077" in writes[0]
    finally:
        target.run(f"rm -f {plan.token_path} {victim}")


def test_nfs_store_is_checked_before_vllm_and_never_fetched(target, hub, plan):
    store = "/srv/sparkdeploy-test-models"
    if not snapshot_verdict(target, plan).complete:
        assert deploy(hub).returncode == 0
    target.run(f"rm -rf {store} && mkdir -p {store} && cp -a {plan.repo_dir} {store}/")
    nfs = ("model_store=nfs", f"model_store_nfs_dir={store}")
    hub.requests.clear()
    try:
        dry = deploy(hub, *nfs, dry=True)
        assert dry.returncode == 0 and _changed(dry.stdout) == []
        assert deploy(hub, *nfs).returncode == 0
        target.run(f"rm -f {store}/models--openai--gpt-oss-120b/blobs/*")
        broken = deploy(hub, *nfs)
        assert broken.returncode != 0
        assert "weights of openai/gpt-oss-120b are not usable" in broken.stderr
        assert "vLLM is not started" in broken.stderr
        target.run(f"rm -rf {store}/models--openai--gpt-oss-120b")
        empty = deploy(hub, *nfs)
        assert empty.returncode != 0 and "no snapshot of openai/gpt-oss-120b" in empty.stderr
        assert hub.requests == [], "the NFS store is never downloaded into"
    finally:
        target.run(f"rm -rf {store}")
