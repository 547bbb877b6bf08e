"""Model weights offline: data validation, the completeness rules, the fact's script against
cache layouts built here, following a download through its status file, and the task's plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sparkdeploy.errors import ConfigError
from sparkdeploy.facts import HubSnapshot
from sparkdeploy.model_repos import ModelRepo
from sparkdeploy.waits import Reporter
from sparkdeploy.weights import (
    SnapshotListing,
    check_snapshot,
    human_bytes,
    parse_listing,
    parse_status,
    pip_install_args,
    progress_line,
    revision_args,
    weights_plan,
)
from sparkdeploy.weights_ops import fetch_command, follow_fetch

REPO = "openai/gpt-oss-120b"
COMMIT = "b5c939de8f754692c1647ca79fbf85e8c1e70f8a"
BASE = {"service_user": "cluster", "model_store": "hf_cache", "model_store_nfs_dir": "/mnt/models"}


def plan_for(**data: Any):
    repo = ModelRepo(REPO, "model", data.get("model_revision"))
    return weights_plan("spark", {**BASE, **data}, repo, "recipes/openai-gpt-oss-120b.yaml")


# --- data -------------------------------------------------------------------------------------


def test_defaults_fetch_into_the_service_users_hub_cache():
    plan = plan_for()
    assert plan.cache_dir == "/home/cluster/.cache/huggingface/hub"
    assert plan.token_path == "/home/cluster/.cache/huggingface/token"
    assert plan.repo_dir.endswith("/hub/models--openai--gpt-oss-120b")
    assert (plan.revision, plan.endpoint, plan.token) == (None, None, None)


def test_nfs_store_reads_the_model_store_directory():
    plan = plan_for(model_store="nfs", model_store_nfs_dir="/mnt/models/")
    assert plan.cache_dir == "/mnt/models"


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("model_store", "s3", "is not a model store"),
    ("model_revision", "../etc", "is not a branch, tag or commit"),
    ("model_revision", "-rf", "is not a branch, tag or commit"),
    ("model_download_timeout", 0, "is not a positive number"),
    ("model_download_timeout", "1h", "is not a positive number"),
    ("model_hub_endpoint", "huggingface.co", "is not an http(s) URL"),
    ("model_fetch_dir", "opt/weights", "is not an absolute path"),
])
def test_bad_data_is_a_config_error_naming_the_key(key, value, problem):
    with pytest.raises(ConfigError) as error:
        plan_for(**{key: value})
    assert f"key '{key}'" in str(error.value) and problem in str(error.value)


def test_a_recipe_without_a_repository_id_names_the_recipe():
    with pytest.raises(ConfigError, match=r"recipes/x.yaml: key 'model': None is not a Hugging Face"):
        weights_plan("spark", BASE, ModelRepo(None, "model"), "recipes/x.yaml")


@pytest.mark.parametrize("token", ["hf_xxx", "short", "hf_with space in it", 12345678])
def test_an_unusable_token_is_refused_without_showing_it(token):
    with pytest.raises(ConfigError) as error:
        plan_for(model_hub_token=token)
    assert "model_hub_token" in str(error.value)
    assert str(token) not in str(error.value)


def test_the_token_never_shows_in_the_plans_repr():
    plan = plan_for(model_hub_token="hf_SecretValue123456")
    assert "hf_SecretValue123456" not in repr(plan)
    assert "hf_SecretValue123456" not in " ".join(fetch_command(plan, "run1"))


def test_a_pinned_revision_is_passed_to_vllm_unless_the_recipe_sets_one():
    assert revision_args(["vllm", "serve", REPO], {}) == []
    assert revision_args(["vllm", "serve", REPO], {"model_revision": COMMIT}) == [
        "--revision", COMMIT, "--tokenizer-revision", COMMIT]
    assert revision_args(["vllm", "serve", REPO, "--revision=v1"], {"model_revision": COMMIT}) == [
        "--tokenizer-revision", COMMIT]


def test_a_plain_http_index_is_trusted_explicitly():
    assert "--index-url" not in pip_install_args(None)
    args = pip_install_args("http://standins:47381/simple")
    assert "--index-url http://standins:47381/simple --trusted-host standins" in args


def test_the_fetch_command_runs_the_shipped_script_with_the_cache_and_endpoint():
    plan = plan_for(model_hub_endpoint="http://hub:1", model_revision=COMMIT, model_download_timeout=60)
    command = " ".join(fetch_command(plan, "run1"))
    assert command.startswith("env HF_HOME=/home/cluster/.cache/huggingface HF_ENDPOINT=http://hub:1 "
                              "/opt/sparkdeploy/weights/venv/bin/python "
                              "/opt/sparkdeploy/weights/fetch_weights.py start")
    assert f"--revision {COMMIT}" in command and "--timeout 60" in command


# --- completeness -----------------------------------------------------------------------------

TREE = {
    "config.json": {"size": 10, "blob_id": "a" * 40},
    "model-00000-of-00001.safetensors": {"size": 134, "blob_id": "b" * 40,
                                         "lfs_sha256": "c" * 64, "lfs_size": 5000},
}


def listing(**changes: Any) -> SnapshotListing:
    values = {"store": "ok", "fstype": "ext4", "commit": COMMIT, "tree": TREE,
              "files": {"config.json": 10, "model-00000-of-00001.safetensors": 5000}}
    return SnapshotListing(**{**values, **changes})


def test_every_file_of_the_recorded_list_at_its_size_is_complete():
    verdict = check_snapshot(listing(), plan_for())
    assert verdict.complete and verdict.total_bytes == verdict.present_bytes == 5010


@pytest.mark.parametrize(("changes", "reason"), [
    ({"files": {"config.json": 10}}, "1 of 2 files missing or incomplete"),
    ({"files": {"config.json": 10, "model-00000-of-00001.safetensors": 134}}, "1 of 2 files missing"),
    ({"commit": None}, "no snapshot of openai/gpt-oss-120b"),
    ({"store": "missing"}, "does not exist"),
    ({"store": "unreadable"}, "not readable by root"),
    ({"broken": ("model-00000-of-00001.safetensors",)}, "point nowhere"),
    ({"unreadable": ("config.json",)}, "not readable (e.g. config.json)"),
    ({"timed_out": True}, "did not finish in time"),
])
def test_anything_less_is_incomplete_with_a_reason(changes, reason):
    verdict = check_snapshot(listing(**changes), plan_for())
    assert not verdict.complete and reason in verdict.reason


def test_without_a_recorded_list_the_safetensors_index_decides():
    index = {"w1": "model-00000-of-00002.safetensors", "w2": "model-00001-of-00002.safetensors"}
    files = {"config.json": 10, "model-00000-of-00002.safetensors": 9}
    verdict = check_snapshot(listing(tree=None, index=index, files=files), plan_for())
    assert not verdict.complete and "1 shard(s)" in verdict.reason
    files["model-00001-of-00002.safetensors"] = 9
    assert check_snapshot(listing(tree=None, index=index, files=files), plan_for()).complete
    partial = listing(tree=None, index=index, files=files, partial_bytes=5)
    assert "interrupted download" in check_snapshot(partial, plan_for()).reason
    no_weights = listing(tree=None, files={"config.json": 1})
    assert "no weight files" in check_snapshot(no_weights, plan_for()).reason


def test_an_empty_mount_point_hints_at_the_missing_nfs_mount():
    plan = plan_for(model_store="nfs")
    verdict = check_snapshot(listing(commit=None, fstype="ext4"), plan, expect_nfs=True)
    assert "not NFS: is the mount up?" in verdict.reason
    assert "NFS" not in check_snapshot(listing(commit=None, fstype="nfs4"), plan, expect_nfs=True).reason


# --- the fact's script, run here against cache layouts ----------------------------------------


def make_cache(root: Path, files: dict[str, bytes], commit: str = COMMIT, tree: bool = True,
               ref: str | None = "main") -> Path:
    """A hub cache as huggingface_hub lays it out: blobs, snapshot symlinks, refs, trees."""
    folder = root / "models--openai--gpt-oss-120b"
    (folder / "blobs").mkdir(parents=True)
    snapshot = folder / "snapshots" / commit
    entries = {}
    for index, (path, content) in enumerate(files.items()):
        blob = folder / "blobs" / f"{index:040x}"
        blob.write_bytes(content)
        target = snapshot / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(blob, target.parent))
        entries[path] = {"size": len(content), "blob_id": blob.name}
    if ref:
        (folder / "refs").mkdir()
        (folder / "refs" / ref).write_text(commit)
    if tree:
        (folder / "trees").mkdir()
        (folder / "trees" / f"{commit}.json").write_text(
            json.dumps({"format_version": 1, "files": entries}, indent=1))
    return folder


def run_fact(cache_dir: Path, revision: str | None = None) -> SnapshotListing:
    command = HubSnapshot().command(str(cache_dir), REPO, revision)
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    return HubSnapshot().process(output.splitlines())


FILES = {"config.json": b"{}", "model-00000-of-00001.safetensors": b"x" * 3000,
         "original/config.json": b"{}", "name with space.txt": b"ok"}


def test_the_fact_sees_a_complete_snapshot(tmp_path):
    make_cache(tmp_path, FILES)
    found = run_fact(tmp_path)
    assert (found.store, found.commit) == ("ok", COMMIT)
    assert found.files["original/config.json"] == 2 and found.files["name with space.txt"] == 2
    assert check_snapshot(found, plan_for()).complete


def test_the_fact_resolves_a_pinned_commit_without_refs(tmp_path):
    make_cache(tmp_path, FILES, ref=None)
    assert run_fact(tmp_path).commit is None
    assert check_snapshot(run_fact(tmp_path, COMMIT), plan_for(model_revision=COMMIT)).complete


def test_the_fact_sees_a_missing_blob_and_a_partial_download(tmp_path):
    folder = make_cache(tmp_path, FILES)
    blob = (folder / "snapshots" / COMMIT / "model-00000-of-00001.safetensors").resolve()
    blob.rename(blob.with_name(blob.name + ".incomplete"))
    found = run_fact(tmp_path)
    assert found.broken == ("model-00000-of-00001.safetensors",) and found.partial_bytes == 3000
    assert not check_snapshot(found, plan_for()).complete


def test_the_fact_without_a_store_or_a_download(tmp_path):
    assert run_fact(tmp_path / "absent").store == "missing"
    found = run_fact(tmp_path)
    assert (found.store, found.commit) == ("ok", None)


def test_the_fact_reads_the_safetensors_index_when_no_list_was_recorded(tmp_path):
    index = json.dumps({"weight_map": {"w": "model-00000-of-00001.safetensors"}}, indent=2).encode()
    make_cache(tmp_path, {**FILES, "model.safetensors.index.json": index}, tree=False)
    found = run_fact(tmp_path)
    assert found.tree is None and found.index == {"w": "model-00000-of-00001.safetensors"}
    assert check_snapshot(found, plan_for()).complete


def test_parse_listing_ignores_what_it_does_not_know():
    found = parse_listing(["store ok nfs4", "commit ", "noise", "partial 12 abc.incomplete", "timedout"])
    assert (found.store, found.fstype, found.commit, found.partial_bytes, found.timed_out) == (
        "ok", "nfs4", None, 12, True)


# --- following a download ---------------------------------------------------------------------


class FakeHost:
    """Answers the follower's commands from a script of status files and live pids."""

    def __init__(self, statuses: list[dict[str, Any] | None], alive: set[int], log: list[str]):
        self.statuses, self.alive, self.log = statuses, alive, log
        self.polls = 0

    def run(self, command: str) -> tuple[bool, list[str]]:
        if command.startswith("cat "):
            status = self.statuses[min(self.polls, len(self.statuses) - 1)]
            self.polls += 1
            return (status is not None, [json.dumps(status)] if status else [])
        if command.startswith("test -d /proc/"):
            return int(command.rsplit("/", 1)[1]) in self.alive, []
        if command.startswith("tail "):
            return True, self.log
        raise AssertionError(command)


def reporter(messages: list[tuple[str, str]]) -> Reporter:
    clock = iter(range(0, 100000, 5))
    return Reporter(info=lambda text: messages.append(("info", text)),
                    error=lambda text: messages.append(("error", text)),
                    sleep=lambda seconds: None, clock=lambda: float(next(clock)))


def status(state: str, run_id: str = "mine", **fields: Any) -> dict[str, Any]:
    return {"run_id": run_id, "repo": REPO, "revision": None, "pid": 42, "state": state,
            "done_bytes": 0, "total_bytes": 65_000_000_000, **fields}


def test_follows_a_download_to_the_end_with_progress_lines():
    host = FakeHost([None, status("checking"), status("downloading", done_bytes=13_000_000_000,
                                                      bytes_per_second=100_000_000),
                     status("done", message="complete")], {42}, [])
    messages: list[tuple[str, str]] = []
    assert follow_fetch(host.run, plan_for(model_progress_interval=1), "mine", reporter(messages))
    assert ("info", "fetching openai/gpt-oss-120b: 13.0 GB of 65.0 GB (20%), 100.0 MB/s, "
            "about 9 min left") in messages
    assert messages[-1][0] == "info" and "complete" in messages[-1][1]


def test_a_failed_download_reports_its_message_and_the_log_tail():
    no_space = status("no_space", message="not enough disk space: needs 65.0 GB but only 12.0 GB")
    host = FakeHost([no_space], {42}, ["last log line"])
    messages: list[tuple[str, str]] = []
    assert not follow_fetch(host.run, plan_for(), "mine", reporter(messages))
    assert messages[-1][0] == "error"
    assert "needs 65.0 GB but only 12.0 GB" in messages[-1][1] and "last log line" in messages[-1][1]


def test_a_stale_status_is_ignored_until_the_start_grace_ends():
    host = FakeHost([status("done", run_id="old")], set(), [])
    messages: list[tuple[str, str]] = []
    assert not follow_fetch(host.run, plan_for(), "mine", reporter(messages))
    assert "did not start" in messages[-1][1]


def test_a_download_already_running_is_followed_instead_of_a_second_one():
    host = FakeHost([status("downloading", run_id="other"), status("done", run_id="other")], {42}, [])
    messages: list[tuple[str, str]] = []
    assert follow_fetch(host.run, plan_for(), "mine", reporter(messages))
    assert any("already running on the host (pid 42)" in text for _, text in messages)


def test_a_download_that_died_without_a_result_fails():
    host = FakeHost([status("downloading")], set(), ["Killed"])
    messages: list[tuple[str, str]] = []
    assert not follow_fetch(host.run, plan_for(), "mine", reporter(messages))
    assert "stopped without a result" in messages[-1][1] and "Killed" in messages[-1][1]


def test_status_and_progress_formatting():
    assert parse_status("{half") is None and parse_status('{"state": "done"}') == {"state": "done"}
    assert human_bytes(65_238_000_000) == "65.2 GB" and human_bytes(512) == "512 B"
    assert progress_line({"repo": REPO, "state": "checking"}).endswith("reading the file list from the hub")


# --- the task on a fake host ------------------------------------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
SECRET = "hf_fakeHostToken0123456789"


def plan_on_fake_host(snapshot_output: str, *data: str) -> subprocess.CompletedProcess:
    responses = {"/etc/passwd": "cluster:x:1000:1000::/home/cluster:/bin/bash|cluster|cluster||",
                 "findmnt": snapshot_output}
    args = [PYINFRA, "@fake/spark", "tests/sandbox/weights_deploy.py", "--dry", "--json",
            "--data", f"fake_responses={json.dumps(responses)}", "--data", "recipe=openai-gpt-oss-120b",
            "--data", "caches_tiktoken_source=tests/standins/tiktoken/o200k_base.tiktoken",
            "--data", "caches_tiktoken_sha256="
            "e66088df4cdb28fbad3c55ac5a7ae741bc402e732ed948eb096a8ed6f852768f"]
    for item in data:
        args += ["--data", item]
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYINFRA_FAKE_DELAY": "0"})


def weight_operations(result: subprocess.CompletedProcess) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [op for op in json.loads(result.stdout)["plan"] if op["name"].startswith("Model weights |")]


def test_a_fresh_host_plans_the_tool_and_the_fetch_with_named_operations_only(tmp_path):
    result = plan_on_fake_host("store ok ext4\ncommit ", f"model_hub_token={SECRET}",
                               f"secrets_dir={tmp_path}")
    operations = weight_operations(result)
    names = [op["name"].split(" | ", 1)[1] for op in operations]
    assert names[-1] == "Fetch the openai/gpt-oss-120b weights into /home/cluster/.cache/huggingface/hub"
    assert "Place the Hugging Face token for gated models (secret)" in names
    assert all(op["args"] == [] for op in operations)
    assert SECRET not in result.stdout + result.stderr


def test_a_complete_snapshot_plans_no_download_at_all(tmp_path):
    tree = json.dumps({"format_version": 1, "files": {"config.json": {"size": 2, "blob_id": "a"}}})
    complete = f"store ok ext4\ncommit {COMMIT}\ntree {tree}\nfile 2 config.json"
    names = [op["name"] for op in weight_operations(plan_on_fake_host(complete, f"secrets_dir={tmp_path}"))]
    assert names == ["Model weights | Keep the Hugging Face hub cache "
                     "/home/cluster/.cache/huggingface/hub for cluster"]


def test_an_unusable_nfs_store_plans_only_the_check(tmp_path):
    names = [op["name"] for op in weight_operations(plan_on_fake_host(
        "store ok ext4\ncommit ", "model_store=nfs", f"secrets_dir={tmp_path}"))]
    assert names == ["Model weights | Check that the openai/gpt-oss-120b weights are readable on the "
                     "model store /mnt/models"]
