"""Docker Engine and the NVIDIA Container Toolkit, with the nvidia runtime registered."""

from __future__ import annotations

import hashlib
import json

import pytest

from sparkdeploy import daemon_json, toolkit
from sparkdeploy.data import project_path


def test_all_four_toolkit_packages_share_one_version_at_or_above_the_floor(host):
    versions = set()
    for name in toolkit.TOOLKIT_PACKAGES:
        package = host.package(name)
        assert package.is_installed, name
        versions.add(package.version)
    assert len(versions) == 1, versions
    assert toolkit.meets_floor(versions.pop())


def test_the_repository_is_ours_alone_or_not_added_at_all(host, host_data):
    sources = host.file(toolkit.SOURCES_PATH)
    if not (sources.exists and toolkit.MANAGED_MARKER in sources.content_string):
        pytest.skip("the toolkit came with the system: the deploy added no repository")
    line = toolkit.repo_line(host_data["toolkit_repo_url"])
    assert line in sources.content_string.splitlines()
    assert (sources.user, sources.group, sources.mode) == ("root", "root", 0o644)
    keyring = host.file(toolkit.KEYRING_PATH)
    local_key = project_path(host_data["toolkit_repo_key_file"]).read_bytes()
    assert keyring.sha256sum == hashlib.sha256(local_key).hexdigest()
    prefix = toolkit.repo_url_prefix(host_data["toolkit_repo_url"])
    listed = host.run(f"grep -rlF -- '{prefix}' /etc/apt/sources.list /etc/apt/sources.list.d")
    assert listed.stdout.split() == [toolkit.SOURCES_PATH]
    policy = host.run("apt-cache policy nvidia-container-toolkit")
    assert policy.rc == 0 and "Signed-By" not in policy.stderr


def test_docker_runs_with_compose_v2(host):
    docker = host.service("docker")
    assert docker.is_running and docker.is_enabled
    assert host.run("docker compose version").rc == 0


def test_daemon_json_registers_the_nvidia_runtime(host):
    if daemon_json.flags_add_nvidia_runtime(host.run(daemon_json.UNIT_TEXT_COMMAND).stdout):
        pytest.skip("a docker.service drop-in registers the runtime; daemon.json is left alone")
    config = daemon_json.parse(host.file(daemon_json.PATH).content_string)
    assert config["runtimes"]["nvidia"]["path"] in daemon_json.ACCEPTED_RUNTIME_PATHS
    assert (host.file(daemon_json.PATH).user, host.file(daemon_json.PATH).mode) == ("root", 0o644)


def test_the_running_docker_knows_the_nvidia_runtime(host):
    runtimes = json.loads(host.check_output("docker info --format '{{json .Runtimes}}'"))
    assert "nvidia" in runtimes


def test_no_dockerd_flag_clashes_with_daemon_json(host):
    unit = host.run(daemon_json.UNIT_TEXT_COMMAND).stdout
    config = daemon_json.parse(host.file(daemon_json.PATH).content_string)
    assert daemon_json.override_conflicts(unit, config) == []
