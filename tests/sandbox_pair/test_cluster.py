"""Two Sparks as one, on two sandbox hosts: upstream's gpt-oss-120b recipe at tensor parallel 2.

The stand-in vLLM's ranks rendezvous over the sandbox's link networks (the head serves only once
the worker joined from its link address, and stops when it goes away), so what is checked here
is what an operator sees: one model through the proxy at tp 2, an image made once and carried
over the link, a converged pair left alone, a lost rank caught and every rank restarted together,
and a wedged head restarted by its watchdog with the worker rejoining.
"""

from __future__ import annotations

import json
import time

from sparkdeploy.image_build import RUNNER_PATH
from sparkdeploy.sandbox.state import HOST_NAME, node_names

HEAD, WORKER = node_names(2)
_HEAD_STOPS_SECONDS = 60
_REJOIN_SECONDS = 240
_REPORT_SECONDS = 90
_HOOK_EVENTS = "/var/lib/sparkdeploy/watch/hook-events.jsonl"
_WATCHDOG_JOURNAL = "journalctl -t sparkdeploy-watchdog -o cat --no-pager"


def _verify(sparkdeploy):
    result = sparkdeploy("verify", "--limit", HOST_NAME)
    return result.returncode, result.stdout + result.stderr


def test_the_pair_serves_one_model_at_tp2_through_the_proxy(first_deploy, sparkdeploy):
    status, output = _verify(sparkdeploy)
    assert status == 0, output
    assert "tensor parallel 2" in output and "worker rank runs" in output, output


def test_the_worker_joined_the_head_over_the_link(first_deploy, on_node, pair_data):
    logs = on_node(HEAD, f"docker logs {pair_data[HEAD]['vllm_container_name']} 2>&1")
    worker_address = pair_data[WORKER]["cluster_link_subnets"][0].rsplit(".", 1)[0] + ".12"
    assert f"rank 1 joined from {worker_address}" in logs, logs[-2000:]


def test_the_head_makes_the_image_and_the_worker_gets_the_same_one(first_deploy, on_node,
                                                                    pair_data, rank_containers):
    ranks = rank_containers()
    assert ranks[HEAD][2] == ranks[WORKER][2], ranks
    log_dir = pair_data[WORKER]["upstream_build_log_dir"]
    never_built = on_node(WORKER, f"ls {RUNNER_PATH} {log_dir}/image-*.log 2>/dev/null; true")
    assert never_built.strip() == "", f"the image runner ran on the worker: {never_built}"
    assert on_node(HEAD, f"ls {log_dir}/image-*.log").strip()


def test_a_second_deploy_changes_and_restarts_nothing_on_either_node(first_deploy, deploy_pair,
                                                                      rank_containers, sparkdeploy):
    before = rank_containers()
    report = deploy_pair()
    assert report.returncode == 0, report.failure_summary()
    assert report.changes == {}, report.changes
    assert rank_containers() == before
    drift = sparkdeploy("drift", "--limit", HOST_NAME)
    assert drift.returncode == 0, drift.stdout + drift.stderr


def test_a_stopped_worker_is_caught_and_the_deploy_restarts_every_rank(
        first_deploy, deploy_pair, on_node, pair_data, rank_containers, sparkdeploy):
    before = rank_containers()
    on_node(WORKER, f"docker stop {pair_data[WORKER]['vllm_container_name']}")
    _wait_for_head_restart(on_node, pair_data, before[HEAD][1])
    status, output = _verify(sparkdeploy)
    assert status != 0 and "worker rank runs" in output, output
    drift = sparkdeploy("drift", "--limit", HOST_NAME)
    assert drift.returncode != 0, drift.stdout
    report = deploy_pair()
    assert report.returncode == 0, report.failure_summary()
    after = rank_containers()
    assert all(after[node][1] != before[node][1] for node in (HEAD, WORKER)), (before, after)
    status, output = _verify(sparkdeploy)
    assert status == 0, output


def test_a_change_on_one_node_restarts_both_ranks(first_deploy, deploy_pair, on_node, pair_data,
                                                 rank_containers):
    compose = f"{pair_data[WORKER]['vllm_compose_dir']}/compose.yaml"
    on_node(WORKER, f"echo '# edited by hand' >> {compose}")
    before = rank_containers()
    report = deploy_pair()
    assert report.returncode == 0, report.failure_summary()
    assert any("compose.yaml" in label for label in report.changes.get(WORKER, [])), report.changes
    assert not any("compose.yaml" in label for label in report.changes.get(HEAD, [])), report.changes
    after = rank_containers()
    assert all(after[node][1] != before[node][1] for node in (HEAD, WORKER)), (before, after)


def _wait_for_head_restart(on_node, pair_data, started_at: str) -> None:
    """The head's engine stops with its peer (its container then restarts and waits again)."""
    name = pair_data[HEAD]["vllm_container_name"]
    deadline = time.monotonic() + _HEAD_STOPS_SECONDS
    while time.monotonic() < deadline:
        state = on_node(HEAD, f"docker inspect --format '{{{{.State.StartedAt}}}} "
                        f"{{{{.State.Status}}}}' {name}").split()
        if state[0] != started_at or state[1] != "running":
            return
        time.sleep(2)
    raise AssertionError(f"the head kept running {_HEAD_STOPS_SECONDS} s after its worker stopped")


def _hook_events(on_node, deadline: float) -> list[str]:
    """The head's hook events, once there are any (or the deadline passed)."""
    while True:
        text = on_node(HEAD, f"cat {_HOOK_EVENTS} 2>/dev/null || true")
        if text.strip() or time.monotonic() >= deadline:
            return [json.loads(line)["event"] for line in text.splitlines() if line.strip()]
        time.sleep(2)


def test_a_wedged_head_is_restarted_by_its_watchdog_and_the_worker_rejoins(
        first_deploy, on_node, pair_data, rank_containers, sparkdeploy):
    """The head's watchdog restarts the head's project; the worker's rank stops with its head, as
    NCCL ranks do, and its bounded restart policy brings it to the new rendezvous."""
    before = rank_containers()
    on_node(HEAD, f"docker exec {pair_data[HEAD]['vllm_container_name']} touch /run/standin-faults/wedge")
    deadline = time.monotonic() + _REJOIN_SECONDS
    while True:
        after = rank_containers()
        restarted = all(after[node][1] != before[node][1] for node in (HEAD, WORKER))
        if restarted and (verified := _verify(sparkdeploy))[0] == 0:
            break
        assert time.monotonic() < deadline, \
            f"not serving at tp 2 again {_REJOIN_SECONDS} s after the wedge: {before} {after}"
        time.sleep(3)
    assert "tensor parallel 2" in verified[1], verified[1]
    # the watchdog reports once its own wait for /health is over, which may be after verify passed
    events = _hook_events(on_node, time.monotonic() + _REPORT_SECONDS)
    assert events == ["restarted"], (events, on_node(HEAD, _WATCHDOG_JOURNAL))
    # a worker rank is never probed: its watchdog keeps no record of the model
    assert on_node(WORKER, "ls /var/lib/sparkdeploy/watch").strip() == ""
