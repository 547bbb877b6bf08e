"""Docker and toolkit detection, version floor, key file and daemon.json merging."""

from __future__ import annotations

import json

import pytest

from sparkdeploy import daemon_json, toolkit
from sparkdeploy.errors import ConfigError
from sparkdeploy.packages import missing_packages

SOURCE = "host 'h' data"


@pytest.mark.parametrize("version", ["1.17.8-1", "1.19.0-1", "1.20.1-1", "2.0.0-1"])
def test_versions_at_or_above_the_security_floor_are_accepted(version):
    assert toolkit.check_version(version, SOURCE) == version


@pytest.mark.parametrize("version", ["1.17.7-1", "1.16.2-1", "1.9.99-1"])
def test_versions_below_the_security_floor_are_refused(version):
    with pytest.raises(ConfigError, match="CVE-2025-23266"):
        toolkit.check_version(version, SOURCE)


@pytest.mark.parametrize("version", ["latest", "", 1.17, None])
def test_a_version_must_be_a_package_version(version):
    with pytest.raises(ConfigError, match="toolkit_version"):
        toolkit.check_version(version, SOURCE)


def test_all_four_packages_are_pinned_to_one_version():
    assert toolkit.pinned_packages("1.17.8-1") == [
        "nvidia-container-toolkit=1.17.8-1",
        "nvidia-container-toolkit-base=1.17.8-1",
        "libnvidia-container-tools=1.17.8-1",
        "libnvidia-container1=1.17.8-1",
    ]


def test_the_repository_line_is_nvidias_with_the_keyring():
    url = "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)"
    assert toolkit.repo_line(url) == (
        "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] "
        "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /")
    assert toolkit.repo_url_prefix(url) == "https://nvidia.github.io/libnvidia-container/stable/deb"


def test_preinstalled_toolkit_is_configured_only():
    installed = {"nvidia-container-toolkit": {"1.19.0-1"}, "docker-ce": {"5:29.2.1-1"}}
    situation = toolkit.assess(installed, sources_file_managed=False, foreign_repo_files=[],
                               host_name="spark")
    assert not situation.manage_repo and not situation.install_packages
    assert not situation.install_docker
    assert situation.warnings == ()


def test_preinstalled_toolkit_below_the_floor_is_reported_not_replaced():
    situation = toolkit.assess({"nvidia-container-toolkit": {"1.17.7-1"}}, False, [], "spark")
    assert not situation.install_packages
    assert "below 1.17.8" in situation.warnings[0]


def test_missing_toolkit_and_docker_are_installed_with_the_repository():
    situation = toolkit.assess({}, sources_file_managed=False, foreign_repo_files=[], host_name="h")
    assert situation.manage_repo and situation.install_packages and situation.install_docker


def test_a_toolkit_the_deploy_installed_stays_managed():
    situation = toolkit.assess({"nvidia-container-toolkit": {"1.17.8-1"}, "docker.io": {"26.1"}},
                               sources_file_managed=True, foreign_repo_files=[], host_name="h")
    assert situation.manage_repo and situation.install_packages and not situation.install_docker


def test_a_repository_listed_elsewhere_is_not_added_twice():
    situation = toolkit.assess({}, False, ["/etc/apt/sources.list.d/libnvidia.list"], "h")
    assert not situation.manage_repo and situation.install_packages
    assert "Signed-By" in situation.warnings[0]


def test_key_file_must_be_dearmored(tmp_path):
    armored = tmp_path / "key.asc"
    armored.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    with pytest.raises(ConfigError, match="ASCII-armored"):
        toolkit.check_key_file(str(armored), SOURCE)
    binary = tmp_path / "key.gpg"
    binary.write_bytes(b"\x99\x02\x0d\x04")
    assert toolkit.check_key_file(str(binary), SOURCE) == binary


def test_missing_key_file_explains_how_to_fetch_it(tmp_path):
    with pytest.raises(ConfigError, match="gpg --dearmor"):
        toolkit.check_key_file(str(tmp_path / "absent.gpg"), SOURCE)


def test_missing_packages_compares_pinned_versions():
    installed = {"earlyoom": {"1.7-2"}, "libnvidia-container1": {"1.17.7-1"}}
    assert missing_packages(installed, ["earlyoom", "libnvidia-container1=1.17.8-1", "nfs-common"]) == [
        "libnvidia-container1=1.17.8-1", "nfs-common"]
    assert missing_packages(installed, ["earlyoom", "libnvidia-container1=1.17.7-1"]) == []


def test_runtime_is_added_and_every_other_key_kept():
    existing = {"log-driver": "journald", "runtimes": {"crun": {"path": "/usr/bin/crun"}},
                "default-shm-size": "1G"}
    merged = daemon_json.with_nvidia_runtime(existing)
    assert merged == {
        "log-driver": "journald",
        "default-shm-size": "1G",
        "runtimes": {"crun": {"path": "/usr/bin/crun"},
                     "nvidia": {"args": [], "path": "nvidia-container-runtime"}},
    }
    assert existing["runtimes"] == {"crun": {"path": "/usr/bin/crun"}}


def test_rendering_matches_nvidia_ctk_layout():
    text = daemon_json.render(daemon_json.with_nvidia_runtime({}))
    assert text == ('{\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n'
                    '            "path": "nvidia-container-runtime"\n        }\n    }\n}\n')
    assert json.loads(text)["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"


@pytest.mark.parametrize("path", ["nvidia-container-runtime", "/usr/bin/nvidia-container-runtime"])
def test_an_existing_equivalent_runtime_needs_no_rewrite(path):
    assert daemon_json.has_nvidia_runtime({"runtimes": {"nvidia": {"path": path, "args": []}}})


@pytest.mark.parametrize("config", [{}, {"runtimes": {}}, {"runtimes": {"nvidia": {"path": "runc"}}},
                                    {"runtimes": "nvidia"}])
def test_a_missing_or_wrong_runtime_needs_a_rewrite(config):
    assert not daemon_json.has_nvidia_runtime(config)


def test_absent_or_empty_daemon_json_means_no_settings():
    assert daemon_json.parse(None) == {}
    assert daemon_json.parse("  \n") == {}


@pytest.mark.parametrize("text", ["{", "[1, 2]", '"x"'])
def test_broken_daemon_json_is_refused(text):
    with pytest.raises(daemon_json.DaemonJsonError):
        daemon_json.parse(text)


def test_dropin_flags_that_daemon_json_also_sets_are_conflicts():
    dropin = """[Service]
ExecStart=
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock \\
    --default-runtime=nvidia --add-runtime nvidia=/usr/bin/nvidia-container-runtime
"""
    config = {"hosts": ["unix:///var/run/docker.sock"], "default-runtime": "nvidia",
              "runtimes": {}, "log-driver": "journald"}
    assert daemon_json.override_conflicts(dropin, config) == ["default-runtime", "hosts", "runtimes"]


def test_dropins_without_dockerd_flags_conflict_with_nothing():
    dropin = "[Unit]\nRequiresMountsFor=/mnt/models\n[Service]\nExecStart=\n"
    assert daemon_json.override_conflicts(dropin, {"hosts": []}) == []


@pytest.mark.parametrize("flag", ["--add-runtime nvidia=/usr/bin/nvidia-container-runtime",
                                  "--add-runtime=nvidia=/usr/bin/nvidia-container-runtime"])
def test_a_dropin_that_already_adds_the_runtime_is_recognised(flag):
    dropin = f"[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// {flag}\n"
    assert daemon_json.flags_add_nvidia_runtime(dropin)
    other = "[Service]\nExecStart=/usr/bin/dockerd --add-runtime crun=/usr/bin/crun\n"
    assert not daemon_json.flags_add_nvidia_runtime(other)


def test_a_dropin_that_resets_exec_start_replaces_the_units_flags():
    unit = """# /usr/lib/systemd/system/docker.service
[Service]
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock

# /etc/systemd/system/docker.service.d/override.conf
[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock
"""
    assert daemon_json.dockerd_flag_keys(unit) == {"containerd"}
    assert daemon_json.override_conflicts(unit, {"hosts": ["unix:///var/run/docker.sock"]}) == []
    stock = unit.split("\n\n")[0]
    assert daemon_json.override_conflicts(stock, {"hosts": ["unix:///var/run/docker.sock"]}) == ["hosts"]
