"""``sparkdeploy status`` on the workstation: asking hosts at once, reading their answers, the
table and the exit code. The host side (files/sparkwatch/status.py) has its own tests."""

from __future__ import annotations

import json
import threading

import paramiko
import pytest

from sparkdeploy.data import documented_defaults
from sparkdeploy.status import (
    EXIT_NOT_SERVING,
    EXIT_SERVING,
    HostStatus,
    collect,
    duration,
    exit_code,
    format_table,
    parse_answer,
    status_hosts,
)

NOW = 1_800_000_000.0


def document(host: str, *states: str, action: dict | None = None) -> dict:
    return {
        "host": host, "collected_at": NOW, "host_uptime_s": 5000.0,
        "memory": {"total_kib": 128 * 1024 * 1024, "available_kib": 40 * 1024 * 1024},
        "watchdog": {"enabled": True, "interval_s": 60},
        "models": [{"name": f"model-{index}", "recipe": "openai-gpt-oss-120b", "role": "head",
                    "state": state, "detail": f"{state} detail", "container": "vllm_node",
                    "image": "vllm-node-mxfp4", "image_id": "sha256:602c0f5a10d8aaaa",
                    "container_uptime_s": 7500,
                    "tensor_parallel": 2, "last_action": action} for index, state in enumerate(states)],
    }


def data(**per_host: dict) -> dict:
    return {name: {**documented_defaults(), "recipe": "openai-gpt-oss-120b", **values}
            for name, values in per_host.items()}


def test_hosts_are_asked_at_once():
    both_asking = threading.Barrier(2, timeout=5)

    def run(host, host_data, timeout):
        both_asking.wait()  # fails unless the other host is being asked at the same time
        return 0, json.dumps(document(host, "serving")) + "\n"

    statuses = collect(["spark-a", "spark-b"], data(**{"spark-a": {}, "spark-b": {}}), run)
    assert [status.host for status in statuses] == ["spark-a", "spark-b"]
    assert all(status.serving for status in statuses)


def test_each_host_gets_its_own_timeout_and_an_unreachable_one_is_a_row():
    seen = {}

    def run(host, host_data, timeout):
        seen[host] = timeout
        if host == "spark-b":
            raise paramiko.SSHException("Error reading SSH protocol banner")
        return 0, json.dumps(document(host, "serving"))

    statuses = collect(["spark-a", "spark-b"], data(**{"spark-a": {}, "spark-b": {"status_timeout": 5}}), run)
    assert seen == {"spark-a": 60.0, "spark-b": 5.0}
    assert statuses[1].error == "unreachable over SSH: Error reading SSH protocol banner"
    assert exit_code(statuses) == EXIT_NOT_SERVING


@pytest.mark.parametrize(("code", "output", "error"), [
    (1, "/usr/bin/python3: No module named sparkwatch\n",
     "sparkwatch is not on the host yet: deploy it first"),
    (1, "sudo: a password is required\n", "sudo asks for a password: status needs passwordless sudo"),
    (0, "Traceback\n", "the status command printed no status document"),
    (3, "boom\nlast words\n", "the status command exited 3: last words"),
])
def test_what_went_wrong_on_a_host_is_said_plainly(code, output, error):
    assert parse_answer("spark", code, output) == HostStatus("spark", error=error)


def test_the_document_is_found_beside_stderr_noise():
    status = parse_answer("spark", 0, "warning: something\n" + json.dumps(document("spark", "wedged")))
    assert status.document["models"][0]["state"] == "wedged" and not status.serving


@pytest.mark.parametrize(("states", "code"), [
    (("serving",), EXIT_SERVING), (("serving", "worker"), EXIT_SERVING), ((), EXIT_SERVING),
    (("serving", "wedged"), EXIT_NOT_SERVING), (("starting",), EXIT_NOT_SERVING),
    (("down",), EXIT_NOT_SERVING),
])
def test_exit_code_is_zero_only_when_everything_serves(states, code):
    assert exit_code([HostStatus("spark", document("spark", *states))]) == code


def test_the_table_shows_state_tp_uptime_image_recipe_memory_and_the_last_action():
    action = {"at": NOW - 7200, "what": "restarted after 3 failed probes (...)"}
    table = format_table([HostStatus("spark-a", document("spark-a", "serving", "wedged", action=action)),
                          HostStatus("spark-b", error="unreachable over SSH: timed out")], now=NOW)
    header, first, second, third = table.splitlines()
    assert header.split()[:5] == ["HOST", "MODEL", "STATE", "TP", "UPTIME"]
    assert first.split()[:7] == ["spark-a", "model-0", "serving", "2", "2h05m", "vllm-node-mxfp4",
                                 "(602c0f5a10d8)"]
    assert "88.0/40.0 GiB" in first and first.endswith("2h00m ago: restarted after 3 failed probes (...)")
    assert "wedged" in second and "wedged detail; 2h00m ago: restarted" in second
    assert third.split()[:3] == ["spark-b", "-", "unreachable"] and third.endswith("timed out")


def test_json_keeps_every_hosts_document_and_error():
    statuses = [HostStatus("spark-a", document("spark-a", "serving")), HostStatus("spark-b", error="no")]
    assert [status.as_json()["error"] for status in statuses] == [None, "no"]
    assert statuses[1].as_json()["models"] == []


def test_only_hosts_that_serve_or_are_cluster_nodes_are_asked():
    hosts = data(spark={}, worker={"recipe": None, "cluster_group": "pair"}, nas={"recipe": None})
    assert status_hosts(["spark", "worker", "nas"], hosts) == ["spark", "worker"]


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (45, "45s"), (780, "13m"), (7500, "2h05m"),
                                               (273600, "3d04h")])
def test_durations_read_at_a_glance(seconds, text):
    assert duration(seconds) == text
