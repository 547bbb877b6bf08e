"""What each host's watchdog and watcher are told (sparkdeploy.watchdog), and the refusals."""

from __future__ import annotations

import json

import pytest

from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import plan_host, validate_inventory
from sparkdeploy.secret_values import SuppliedSecret
from sparkdeploy.watchdog import CONFIG_FILE, INSTALL_DIR, SECRETS_FILE, STATUS_COMMAND

HOOK = "curl -fsS -d @- https://hooks.example.net/T0KEN-abcdef123456"


def hosts(**per_host: dict) -> dict[str, dict]:
    base = {**documented_defaults(), "recipe": "openai-gpt-oss-120b", "secrets_dir": "/nonexistent"}
    return {name: {**base, **values} for name, values in per_host.items()}


def files_of(data: dict, host: str) -> dict:
    plan = plan_host(host, data, validate_inventory(data))
    return {rendered.path: rendered for rendered in plan.watch_files}


def config_of(data: dict, host: str) -> dict:
    return json.loads(files_of(data, host)[CONFIG_FILE].content)


def test_a_serving_spark_gets_the_package_its_settings_and_no_secret_file_without_a_hook():
    data = hosts(spark={})
    placed = files_of(data, "spark")
    assert {f"{INSTALL_DIR}/sparkwatch/{name}" for name in ("__main__.py", "watchdog.py")} <= set(placed)
    assert placed[CONFIG_FILE].mode == "0644" and not placed[CONFIG_FILE].secret
    assert not placed[SECRETS_FILE].present
    config = json.loads(placed[CONFIG_FILE].content)
    assert config["models"] == [{
        "name": "openai/gpt-oss-120b", "recipe": "openai-gpt-oss-120b", "url": "http://172.17.0.1:8000",
        "container": "vllm_node", "compose_dir": "/opt/sparkdeploy/vllm", "api_key_file": None,
        "role": "head", "tensor_parallel": 1}]
    assert config["watchdog"] == {
        "enabled": True, "interval": 60, "probe_timeout": 20, "failures_before_restart": 3,
        "start_grace": 2700, "max_restarts": 3, "restart_window": 21600, "use_metrics": True,
        "recovery_timeout": 1800, "poll_interval": 30}
    assert config["watcher"] == {"enabled": False, "targets": []}


def test_the_probe_reads_vllms_key_from_the_projects_secret_file():
    config = config_of(hosts(spark={"vllm_api_key_enabled": True}), "spark")
    assert config["models"][0]["api_key_file"] == "/opt/sparkdeploy/vllm/secrets.env"


def test_the_hook_goes_to_a_0600_secret_file_and_never_into_the_settings():
    data = hosts(spark={"watchdog_notify_command": SuppliedSecret(HOOK),
                        "watchdog_notify_url": "https://hooks.example.net/services/T0KEN"})
    placed = files_of(data, "spark")
    secrets = placed[SECRETS_FILE]
    assert secrets.present and secrets.secret and secrets.mode == "0600"
    assert json.loads(secrets.content) == {"notify_command": HOOK,
                                           "notify_url": "https://hooks.example.net/services/T0KEN"}
    assert "T0KEN" not in placed[CONFIG_FILE].content


def test_a_cluster_probes_its_head_only():
    data = hosts(**{name: {"cluster_group": "pair", "vllm_expose_to_lan": True,
                           "vllm_params": {"tensor_parallel": 2}}
                    for name in ("spark-a", "spark-b")})
    head, worker = config_of(data, "spark-a"), config_of(data, "spark-b")
    assert [model["role"] for model in head["models"]] == ["head"]
    assert [model["role"] for model in worker["models"]] == ["worker"]
    assert head["models"][0]["tensor_parallel"] == 2


def test_a_host_serving_nothing_and_watching_nothing_gets_nothing():
    assert files_of(hosts(box={"recipe": None}), "box") == {}


def test_the_status_command_runs_the_placed_package_without_a_password_prompt():
    assert STATUS_COMMAND == "sudo -n env PYTHONPATH=/usr/local/lib/sparkdeploy python3 -m sparkwatch status"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("watchdog_failures_before_restart", 0, "not a whole number of at least 1"),
    ("watchdog_interval", True, "expected integer"),
    ("watchdog_max_restarts", -1, "not a whole number of at least 0"),
    ("watchdog_notify_url", "ftp://hooks.example.net/x", "not an http(s) URL"),
    ("gpu_clock_limit_mhz", 5000, "is not a GPU clock in MHz"),
])
def test_watchdog_values_that_cannot_run_are_refused_before_any_host(key, value, message):
    data = hosts(spark={key: value})
    with pytest.raises(ConfigError) as error:
        validate_inventory(data)
    assert error.value.key == key and message in str(error.value)


def test_the_gpu_clock_cap_upstream_documents_is_accepted():
    validate_inventory(hosts(spark={"gpu_clock_limit_mhz": 2150}))


def watcher_inventory(**watcher: object) -> dict[str, dict]:
    plug = SuppliedSecret("curl -fsS http://plug-a/cycle?k=s3cret")
    return hosts(**{"spark-a": {"vllm_expose_to_lan": True, "ssh_hostname": "10.0.0.11",
                                "power_cycle_command": plug},
                    "spark-b": {"ssh_port": 2222,
                                "power_cycle_command": "ipmitool -P pw chassis power cycle"},
                    "nas": {"recipe": None, "watcher_enabled": True, **watcher}})


def test_a_watcher_watches_every_other_serving_host_with_their_commands_kept_secret():
    data = watcher_inventory()
    placed = files_of(data, "nas")
    config = json.loads(placed[CONFIG_FILE].content)
    assert config["models"] == [] and config["watchdog"]["enabled"] is False
    assert config["watcher"]["enabled"] and config["watcher"]["failures_before_power_cycle"] == 5
    assert config["watcher"]["targets"] == [
        {"host": "spark-a", "address": "10.0.0.11", "ssh_port": 22, "health_url": "http://10.0.0.11:8000"},
        {"host": "spark-b", "address": "spark-b", "ssh_port": 2222, "health_url": None}]
    assert json.loads(placed[SECRETS_FILE].content)["power_cycle"] == {
        "spark-a": "curl -fsS http://plug-a/cycle?k=s3cret", "spark-b": "ipmitool -P pw chassis power cycle"}
    assert "s3cret" not in placed[CONFIG_FILE].content and placed[SECRETS_FILE].mode == "0600"


@pytest.mark.parametrize(("watcher", "key", "message"), [
    ({"watcher_hosts": ["nas"]}, "watcher_hosts", "is the watcher itself"),
    ({"watcher_hosts": ["spark-c"]}, "watcher_hosts", "not in the inventory"),
])
def test_a_watcher_refuses_itself_and_unknown_hosts(watcher, key, message):
    with pytest.raises(ConfigError) as error:
        validate_inventory(watcher_inventory(**watcher))
    assert error.value.key == key and message in str(error.value)


def test_a_watched_host_needs_its_power_cycle_command():
    data = watcher_inventory()
    data["spark-b"]["power_cycle_command"] = None
    with pytest.raises(ConfigError) as error:
        validate_inventory(data)
    assert error.value.key == "power_cycle_command" and "'spark-b'" in str(error.value)


def test_a_watcher_with_nothing_to_watch_is_refused():
    data = hosts(nas={"recipe": None, "watcher_enabled": True})
    with pytest.raises(ConfigError) as error:
        validate_inventory(data)
    assert error.value.key == "watcher_enabled" and "nothing to watch" in str(error.value)
