"""The watchdog as deployed: its timer running, its settings the data's, its secrets root-only,
and the host's own python3 running sparkwatch to a verdict: every model serves."""

from __future__ import annotations

import json

import pytest

from sparkdeploy.models import active_entries
from sparkdeploy.vllm_service import build_vllm_service
from sparkdeploy.watchdog import CONFIG_FILE, SECRETS_FILE, STATE_DIR, STATUS_COMMAND


@pytest.fixture(scope="module")
def settings(host, host_data):
    if build_vllm_service("checked host", host_data) is None and not host_data.get("watcher_enabled"):
        pytest.skip("this host serves no model and watches no other")
    placed = host.file(CONFIG_FILE)
    assert placed.exists, f"{CONFIG_FILE} is missing"
    return json.loads(placed.content_string)


def test_the_watchdog_timer_runs_when_the_data_enables_it(host, host_data, settings):
    timer = host.service("sparkdeploy-watchdog.timer")
    wanted = bool(host_data["watchdog_enabled"] and settings["models"])
    assert (timer.is_enabled, timer.is_running) == (wanted, wanted)


def test_its_settings_are_the_data(host_data, settings):
    for key in ("interval", "probe_timeout", "failures_before_restart", "start_grace", "max_restarts",
                "restart_window", "use_metrics"):
        assert settings["watchdog"][key] == host_data[f"watchdog_{key}"], key
    served = [build_vllm_service("checked host", entry.data).served_name
              for entry in active_entries("checked host", host_data)]
    assert [model["name"] for model in settings["models"]] == served  # every model, in start order


def test_the_hook_and_power_cycle_commands_are_root_only(host):
    secrets = host.file(SECRETS_FILE)
    if secrets.exists:
        assert (secrets.user, secrets.group, secrets.mode) == ("root", "root", 0o600)
    state = host.file(STATE_DIR)
    assert state.is_directory and state.user == "root" and state.mode == 0o700


def test_the_hosts_own_python_finds_every_model_serving(host, settings):
    if not settings["models"]:
        pytest.skip("this host only watches others")
    answer = host.run(STATUS_COMMAND.removeprefix("sudo -n "))
    assert answer.rc == 0, answer.stderr
    models = json.loads(answer.stdout)["models"]
    assert all(model["state"] in ("serving", "worker") for model in models), models
