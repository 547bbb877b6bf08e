"""The host tasks on a fake host (pyinfra's @fake connector): bad input and unsafe settings stop
the run at prepare, before any change; a good host plans named operations only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
TASKS = ("tasks.toolkit.container_toolkit", "tasks.nfs.nfs_model_store",
         "tasks.caches.cache_directories", "tasks.page_cache.page_cache_drop",
         "tasks.earlyoom.earlyoom_service", "tasks.sshd.sshd_hardening")
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl op@ws"


def authorized_keys(*lines: str, path: str = "/home/llm-agent/.ssh/authorized_keys") -> list[str]:
    """The AuthorizedKeys fact's output for an account with these key lines in ``path``."""
    return ["home 1000 /home/llm-agent", "pubkeyacceptedalgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256",
            f"file {path}", "mode 1000 600", "mode 1000 700", "mode 1000 750",
            *(f"key {line}" for line in lines)]


# Fact output of a Spark that is ready for the host tasks (matched as substrings of commands).
READY_HOST = {
    "getent passwd": authorized_keys(ED25519),
    "KexAlgorithms=": "sntrup761x25519-sha512@openssh.com",
    "sshd_config": "Include /etc/ssh/sshd_config.d/*.conf",
    "/etc/passwd": "cluster:x:1000:1000::/home/cluster:/bin/bash|cluster|cluster||",
    "dpkg -l": "ii  earlyoom  1.7-2  arm64  Early OOM Daemon",
    "uname -s": "Linux",
}


def plan(task: str, responses: dict[str, str], *data: str) -> subprocess.CompletedProcess:
    args = [PYINFRA, "@fake/spark", task, "--dry", "--json",
            "--data", f"fake_responses={json.dumps(responses)}", "--data", "ssh_user=llm-agent"]
    for item in data:
        args += ["--data", item]
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYINFRA_FAKE_DELAY": "0"})


@pytest.mark.parametrize("task", TASKS)
def test_every_operation_is_named_in_operator_language(task, tmp_path):
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(b"\x99\x02\x0d\x04")  # an OpenPGP public-key packet header
    result = plan(task, READY_HOST, "caches_tiktoken_source=tests/standins/tiktoken/o200k_base.tiktoken",
                  "caches_tiktoken_sha256=e66088df4cdb28fbad3c55ac5a7ae741bc402e732ed948eb096a8ed6f852768f",
                  f"toolkit_repo_key_file={keyring}")
    assert result.returncode == 0, result.stderr
    operations = json.loads(result.stdout)["plan"]
    for operation in operations:
        assert operation["args"] == [], operation  # pyinfra lists args only for unnamed operations
        assert " | " in operation["name"] and operation["name"].split(" | ", 1)[1].strip()


def test_turning_passwords_off_for_an_account_without_a_key_stops_the_run():
    result = plan("tasks.sshd.sshd_hardening", {**READY_HOST, "getent passwd": authorized_keys()})
    assert result.returncode == 1
    assert "account 'llm-agent' has no authorized SSH key" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_root_deploy_account_with_root_login_off_stops_the_run():
    result = plan("tasks.sshd.sshd_hardening", READY_HOST, "ssh_user=root")
    assert result.returncode == 1
    assert "PermitRootLogin no would lock it out" in result.stderr


def test_a_main_config_without_the_drop_in_directory_stops_the_run():
    result = plan("tasks.sshd.sshd_hardening", {"getent passwd": READY_HOST["getent passwd"]})
    assert result.returncode == 1
    assert "does not include sshd_config.d/*.conf" in result.stderr


def test_a_missing_service_user_stops_the_run():
    result = plan("tasks.caches.cache_directories", {"getent passwd": "1"})
    assert result.returncode == 1
    assert "key 'service_user': account 'cluster' does not exist" in result.stderr


def test_an_option_the_installed_earlyoom_lacks_stops_the_run():
    result = plan("tasks.earlyoom.earlyoom_service", READY_HOST,
                  'earlyoom_extra_args=["--ignore", "^(Xorg)$"]')
    assert result.returncode == 1
    assert "--ignore is not an option of earlyoom 1.7" in result.stderr


def test_a_toolkit_below_the_security_floor_stops_the_run():
    result = plan("tasks.toolkit.container_toolkit", READY_HOST, "toolkit_version=1.17.7-1")
    assert result.returncode == 1
    assert "CVE-2025-23266" in result.stderr
