"""The stand-in NVIDIA toolkit: a signed repository apt trusts, and GPU containers without a GPU.

The repository checks need only this machine; the rest use the converged sandbox, where the
deploy installed the toolkit from the stand-in repository and registered its runtime.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess

import pytest

from sparkdeploy.sandbox.toolkit_repo import OUT_DIR, build_toolkit_repo

KEYRING = OUT_DIR / "nvidia-container-toolkit-keyring.gpg"
PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
            "libnvidia-container-tools", "libnvidia-container1")
SCRATCH_IMAGE = "sparkdeploy-standin-scratch:gpu-smoke"
GPU_COMPOSE = f"""\
services:
  smoke:
    image: {SCRATCH_IMAGE}
    command: ["/tini", "--version"]
    deploy:
      resources:
        reservations:
          devices:
          - driver: nvidia
            count: all
            capabilities: [gpu]
"""


@pytest.fixture(scope="module")
def repo_dir():
    repo = build_toolkit_repo()
    (arch_dir,) = (repo / "stable" / "deb").iterdir()
    return arch_dir


def _gpgv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["gpgv", "--keyring", str(KEYRING), *args], capture_output=True,
                          text=True, check=False)


def test_release_is_signed_by_the_exported_key(repo_dir, tmp_path):
    assert _gpgv(str(repo_dir / "InRelease")).returncode == 0
    assert _gpgv(str(repo_dir / "Release.gpg"), str(repo_dir / "Release")).returncode == 0
    tampered = tmp_path / "Release"
    shutil.copy(repo_dir / "Release", tampered)
    tampered.write_text(tampered.read_text() + "Suite: tampered\n")
    assert _gpgv(str(repo_dir / "Release.gpg"), str(tampered)).returncode != 0


def test_packages_are_versioned_and_depend_like_nvidias(repo_dir):
    stanzas = {}
    for block in (repo_dir / "Packages").read_text().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        stanzas[fields["Package"]] = fields
    assert set(stanzas) == set(PACKAGES)
    assert {fields["Version"] for fields in stanzas.values()} == {"1.17.8-1"}
    assert "nvidia-container-toolkit-base (= 1.17.8-1)" in stanzas["nvidia-container-toolkit"]["Depends"]
    assert "libnvidia-container-tools (>= 1.17.8-1)" in stanzas["nvidia-container-toolkit"]["Depends"]
    assert "libnvidia-container1 (>= 1.17.8-1)" in stanzas["libnvidia-container-tools"]["Depends"]


@pytest.fixture(scope="module")
def toolkit(converged, on_sandbox):
    """The sandbox with the toolkit the deploy installed, and a one-binary image to run."""
    if "install ok installed" not in on_sandbox(
            "dpkg-query -W -f '${Status}' nvidia-container-toolkit 2>/dev/null", check=False):
        pytest.skip("the deploy did not install the toolkit on the sandbox")
    on_sandbox("docker image inspect " + SCRATCH_IMAGE + " >/dev/null 2>&1 || { "
               "dir=$(mktemp -d) && cp \"$(readlink -f /usr/bin/docker-init)\" $dir/tini && "
               f"tar -C $dir -c . | docker import - {SCRATCH_IMAGE} >/dev/null && rm -rf $dir; }}")
    return on_sandbox


def test_apt_installed_the_toolkit_from_the_signed_stand_in(toolkit):
    policy = toolkit("apt-cache policy nvidia-container-toolkit")
    assert "Installed: 1.17.8-1" in policy
    assert "sparkdeploy-standins" in policy, policy
    assert "1.17.8" in toolkit("nvidia-ctk --version")


def test_nvidia_ctk_merges_the_runtime_into_daemon_json(toolkit):
    merged = toolkit("dir=$(mktemp -d) && echo '{\"log-level\": \"warn\"}' > $dir/daemon.json && "
                     "nvidia-ctk runtime configure --runtime=docker --config=$dir/daemon.json "
                     "2>/dev/null && cat $dir/daemon.json && rm -rf $dir")
    assert json.loads(merged) == {"log-level": "warn", "runtimes": {
        "nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    assert merged.startswith('{\n    "log-level"') and not merged.endswith("\n")


def test_gpu_container_runs_with_the_nvidia_runtime(toolkit):
    output = toolkit(f"docker run --rm --runtime=nvidia --gpus all {SCRATCH_IMAGE} /tini --version")
    assert "tini version" in output


def test_compose_gpu_reservation_starts(toolkit):
    output = toolkit(f"dir=$(mktemp -d) && printf '%s' {shlex.quote(GPU_COMPOSE)} > $dir/compose.yaml"
                     " && docker compose -f $dir/compose.yaml -p sparkdeploy-gpu-smoke run --rm smoke"
                     " 2>&1; rc=$?; docker compose -f $dir/compose.yaml -p sparkdeploy-gpu-smoke down"
                     " >/dev/null 2>&1; rm -rf $dir; exit $rc")
    assert "tini version" in output
