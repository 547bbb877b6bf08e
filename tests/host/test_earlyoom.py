"""earlyoom running with arguments valid for its version: sparing the system, preferring vLLM."""

from __future__ import annotations

import re

import pytest

from sparkdeploy import earlyoom


@pytest.fixture(scope="module")
def running_args(host):
    pid = host.check_output("systemctl show -p MainPID --value earlyoom.service")
    assert pid not in ("", "0"), "earlyoom is not running"
    return host.file(f"/proc/{pid}/cmdline").content.rstrip(b"\0").split(b"\0")


def test_earlyoom_is_enabled_and_running(host):
    service = host.service("earlyoom")
    assert service.is_enabled and service.is_running


def test_it_runs_with_the_arguments_from_data(host, host_data, running_args):
    version = earlyoom.parse_version(host.package("earlyoom").version)
    expected = earlyoom.arguments(host_data, version, "host data")
    assert [arg.decode() for arg in running_args[1:]] == expected


def test_no_option_is_unknown_to_the_installed_version(host, running_args):
    version = earlyoom.parse_version(host.package("earlyoom").version)
    options = {arg.decode() for arg in running_args[1:] if arg.startswith(b"-")}
    assert options <= earlyoom.supported_options(version)


def test_it_spares_the_login_path_and_the_container_engine(running_args):
    avoid = re.compile(running_args[running_args.index(b"--avoid") + 1].decode())
    for comm in ("sshd", "sshd-session", "systemd", "systemd-journal", "dockerd", "containerd",
                 "containerd-shim"):
        assert avoid.search(comm), comm
    assert not avoid.search("python3")


def test_it_prefers_the_vllm_processes(running_args):
    prefer = re.compile(running_args[running_args.index(b"--prefer") + 1].decode())
    for comm in ("VLLM::EngineCor", "VLLM::Worker_TP", "vllm"):
        assert prefer.search(comm), comm
    assert not prefer.search("python3")


def test_its_config_file_is_root_owned(host):
    config = host.file(earlyoom.DEFAULT_FILE)
    assert (config.user, config.group, config.mode) == ("root", "root", 0o644)
