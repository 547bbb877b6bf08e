"""The sandbox's offline parts: recorded state -> inventory hosts, backends, image tags, ssh config."""

from __future__ import annotations

import pytest

from sparkdeploy.data import documented_defaults
from sparkdeploy.host_suite import ssh_config
from sparkdeploy.sandbox import image, state
from sparkdeploy.sandbox.backends import BACKENDS, load_backend
from sparkdeploy.sandbox.local import SandboxError


@pytest.fixture
def state_file(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "SANDBOX_DIR", tmp_path)
    monkeypatch.setattr(state, "STATE_FILE", tmp_path / "state.json")
    return tmp_path / "state.json"


def test_no_recorded_sandbox_means_no_inventory_host(state_file):
    assert state.inventory_hosts() == []


def test_a_recorded_sandbox_is_an_ssh_host_that_says_what_it_cannot_do(state_file):
    data = state.sandbox_host_data("container", {"host_can_mount_nfs": False}, "cluster", 32769)
    state.save_state(state.SandboxState("container", "default", {"sandbox": data}))
    assert state_file.stat().st_mode & 0o777 == 0o600
    [(name, host)] = state.inventory_hosts()
    assert name == "sandbox"
    assert host["ssh_hostname"] == "127.0.0.1" and host["ssh_port"] == 32769
    assert host["ssh_user"] == "cluster" and host["ssh_key"].endswith("id_ed25519")
    assert host["ssh_known_hosts_file"] == "/dev/null"
    assert host["ssh_strict_host_key_checking"] == "no"
    assert host["host_can_mount_nfs"] is False and host["sandbox_backend"] == "container"
    state.clear_state()
    assert state.inventory_hosts() == []


def test_every_registered_backend_has_the_backend_functions():
    for name in BACKENDS:
        backend = load_backend(name)
        for function in ("prepare", "up", "is_up", "down", "describe"):
            assert callable(getattr(backend, function)), (name, function)
        # capabilities are data keys documented in group_data/all.py (a real Spark: all true)
        assert {key: True for key in backend.CAPABILITIES} == {
            key: documented_defaults()[key] for key in backend.CAPABILITIES}


def test_an_unknown_backend_is_refused_with_the_known_ones():
    with pytest.raises(SandboxError, match="available: container"):
        load_backend("lxd")


def test_image_tags_name_the_variant_and_follow_the_inputs(monkeypatch):
    default, bare = image.image_tag("default"), image.image_tag("bare")
    assert default.startswith("sparkdeploy-sandbox:default-") and bare.startswith("sparkdeploy-sandbox:bare-")
    monkeypatch.setattr(image, "BASE_PACKAGES", (*image.BASE_PACKAGES, "htop"))
    assert image.image_tag("default") != default and image.image_tag("bare") != bare


def test_ssh_config_reaches_a_host_as_pyinfra_does():
    text = ssh_config("sandbox", {"ssh_hostname": "127.0.0.1", "ssh_port": 32769,
                                  "ssh_user": "cluster", "ssh_key": "/k",
                                  "ssh_known_hosts_file": "/dev/null",
                                  "ssh_strict_host_key_checking": "no"})
    assert text.splitlines() == ["Host sandbox", "    HostName 127.0.0.1", "    User cluster",
                                 "    Port 32769", "    IdentityFile /k",
                                 "    UserKnownHostsFile /dev/null", "    StrictHostKeyChecking no"]
    assert "HostName pegasus.home.arpa" in ssh_config("pegasus.home.arpa", {"ssh_user": "llm-agent"})
