"""Data values that would inject into a shell line, an apt source, an ssh_config or a path outside
its folder are refused in one line naming host and key, before any host is touched."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sparkdeploy.data_values import check_values
from sparkdeploy.errors import ConfigError
from sparkdeploy.host_suite import ssh_config
from sparkdeploy.plan import validate_inventory
from sparkdeploy.weights import pip_install_args

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
PEGASUS = "pegasus.home.arpa"


@pytest.mark.parametrize(("key", "value"), [
    ("model_pip_index_url", "https://pypi.example/simple --pre; touch /root/x"),
    ("model_pip_index_url", "https://pypi.example/simple$(touch x)"),
    ("toolkit_repo_url", "https://nvidia.example/deb/$(ARCH)\ndeb [trusted=yes] http://evil /"),
    ("upstream_repo_url", "--upload-pack=touch /tmp/x"),
    ("upstream_repo_url", "-uhttps://github.com/eugr/spark-vllm-docker.git"),
    ("ssh_key", "~/.ssh/id_ed25519\nProxyCommand touch /tmp/x"),
    ("vllm_compose_dir", "/../.."),
    ("proxy_compose_dir", "/opt/sparkdeploy/../../etc"),
    ("model_hub_endpoint", "http://[::1"),
])
def test_injection_from_data_is_refused_before_any_host(inventory_data, key, value):
    with pytest.raises(ConfigError) as error:
        validate_inventory(inventory_data(**{key: value}))
    message = str(error.value)
    assert message.startswith("host ") and f"key '{key}'" in message
    assert "\n" not in message.replace(repr(value), "")


def test_the_pip_index_reaches_the_root_pip_line_as_one_word():
    url = "https://pypi.example/simple?token=a*b"
    assert shlex.split(pip_install_args(url)) == [
        "--disable-pip-version-check", "--no-input", "--index-url", url]


def test_the_drift_verify_ssh_config_has_no_line_from_data():
    with pytest.raises(ConfigError, match=r"host 'h' data: key 'ssh_key'"):
        ssh_config("h", {"ssh_key": "/k\nProxyCommand touch /tmp/x"})
    assert ssh_config("h", {"ssh_key": "/my keys/k"}).splitlines()[-1] == '    IdentityFile "/my keys/k"'


def test_render_never_writes_outside_its_folder(tmp_path):
    out = tmp_path / "deep" / "out"
    result = subprocess.run(
        [sys.executable, "-m", "sparkdeploy.cli", "render", PEGASUS, "--out", str(out),
         "--data", "vllm_compose_dir=/../..", "--data", f"secrets_dir={tmp_path / 'secrets'}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "key 'vllm_compose_dir'" in result.stderr
    assert not (tmp_path / "deep").exists()


def test_a_hostile_pip_index_stops_the_deploy_on_a_fake_host(tmp_path):
    responses = {"/etc/passwd": "cluster:x:1000:1000::/home/cluster:/bin/bash|cluster|cluster||",
                 "findmnt": "store ok ext4\ncommit "}
    result = subprocess.run(
        [PYINFRA, "@fake/spark", "tests/sandbox/weights_deploy.py", "--dry", "--json",
         "--data", f"fake_responses={json.dumps(responses)}", "--data", "recipe=openai-gpt-oss-120b",
         "--data", "model_pip_index_url=https://pypi.example/simple;touch${IFS}/root/x",
         "--data", f"secrets_dir={tmp_path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYINFRA_FAKE_DELAY": "0"})
    assert result.returncode == 1
    assert "host '@fake/spark' data: key 'model_pip_index_url'" in result.stderr
    assert "Traceback" not in result.stderr and "touch" not in result.stdout


@pytest.mark.parametrize(("key", "value"), [
    ("proxy_port", 0), ("proxy_port", 65536), ("cluster_ssh_port", -1),
    ("vllm_health_timeout", 0), ("verify_timeout", -5), ("upstream_build_jobs", 0),
    ("clients_context_fraction", float("nan")), ("clients_context_fraction", float("inf")),
    ("clients_context_fraction", 0), ("service_user", "cluster\n"), ("clients_key_env", "A B"),
    ("proxy_bind_address", "0.0.0.0\n"), ("vllm_container_name", "vllm node"),
])
def test_values_of_the_right_type_but_outside_their_range_are_refused(key, value):
    with pytest.raises(ConfigError, match=rf"^host 'h' data: key '{key}': "):
        check_values("h", {key: value})


def test_every_key_without_a_default_declares_the_type_it_takes():
    """A key defaulting to None is type-checked by its declared type; a new one must declare it."""
    from sparkdeploy.data import UNSET_DEFAULT_TYPES, documented_defaults

    unset = {key for key, value in documented_defaults().items() if value is None}
    assert unset - set(UNSET_DEFAULT_TYPES) == set()
