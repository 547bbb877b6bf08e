"""The prerequisites checklist judged from a probe's output."""

from __future__ import annotations

import subprocess

from sparkdeploy import preflight

SUBJECT = preflight.Subject(
    home="/home/cluster",
    cache_dirs=["/home/cluster/.cache/huggingface", "/home/cluster/.cache/tiktoken_rs"],
    image="vllm-node-mxfp4",
    weights_dir=preflight.weights_dir("openai/gpt-oss-120b", "/home/cluster/.cache/huggingface/hub"),
    min_free_gib=100,
)
READY = {
    "arch": "aarch64", "docker": "Docker version 28.3.3, build 980b856", "toolkit": "1.19.0-1",
    "runtimes": '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}',
    "image": "sha256:abc", "weights": "b5c939de8f754692c1647ca79fbf85e8c1e70f8a",
    "cache_0": "yes", "cache_1": "yes", "free_home": str(500 * 1024**3), "free_docker": str(500 * 1024**3),
}


def test_weights_live_in_the_hub_layout():
    assert SUBJECT.weights_dir == "/home/cluster/.cache/huggingface/hub/models--openai--gpt-oss-120b"
    assert preflight.weights_dir(None, "/mnt/models") is None


def test_a_ready_host_passes_every_check():
    checks = preflight.evaluate(SUBJECT, READY)
    assert [check.name for check in checks] == [
        "Docker Engine", "NVIDIA Container Toolkit", "nvidia runtime registered with Docker",
        "image vllm-node-mxfp4", "model weights", "cache directories", "architecture",
        "free disk under /home/cluster", "free disk for Docker images"]
    assert all(check.ok for check in checks)


def test_a_fresh_host_reports_what_is_missing():
    checks = {check.name: check for check in preflight.evaluate(SUBJECT, {"arch": "x86_64"})}
    assert not any(check.ok for check in checks.values())
    assert checks["architecture"].detail == "x86_64, not aarch64"
    assert "missing /home/cluster/.cache/huggingface" in checks["cache directories"].detail
    assert checks["free disk under /home/cluster"].detail == "unknown"


def test_low_disk_is_reported():
    checks = preflight.evaluate(SUBJECT, {**READY, "free_home": str(20 * 1024**3)})
    disk = next(check for check in checks if check.name.startswith("free disk under"))
    assert not disk.ok and disk.detail == "20 GiB free (want 100)"


def test_the_probe_runs_read_only_and_always_succeeds(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    subject = preflight.Subject(home=str(tmp_path), cache_dirs=[str(cache), str(tmp_path / "absent")],
                                image=None, weights_dir=None, min_free_gib=1)
    result = subprocess.run(["sh", "-c", preflight.probe_script(subject)], capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    facts = preflight.parse_probe(result.stdout.splitlines())
    assert facts["cache_0"] == "yes" and facts["cache_1"] == ""
    assert facts["arch"] and facts["free_home"].isdigit()
