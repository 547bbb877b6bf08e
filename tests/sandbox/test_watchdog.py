"""The watchdog on the sandbox, as deployed: a real systemd timer running sparkwatch every 4 s
(group_data/sandbox.py) against the stand-in vLLM, restarting it with docker compose.

The stand-in is wedged from outside its container (``docker exec … touch``): /health stays 200
and completions hang, as a stalled vLLM scheduler does. The tests run in order: a soak (the
watchdog never acted while the earlier sandbox tests ran, nor in eight more passes), one wedge
(one restart, one journal line, one hook call, then healthy probes), re-wedging until the bound
(no restart past ``watchdog_max_restarts``, one alert), and ``sparkdeploy status`` naming each
state. The module leaves the model serving.
"""

from __future__ import annotations

import json
import time

import pytest

from sparkdeploy.sandbox.state import HOST_NAME

STATE_DIR = "/var/lib/sparkdeploy/watch"
HOOK_EVENTS = f"{STATE_DIR}/hook-events.jsonl"
WEDGE = "/run/standin-faults/wedge"
_BOUND = 180.0  # hang detector for what takes seconds here


@pytest.fixture(scope="module")
def session_actions(converged, on_sandbox) -> list[str]:
    """What the watchdog did while the earlier tests deployed, restarted and broke the stack on
    purpose (it ran every 4 s since the first deploy): the long soak."""
    return [line for line in journal(on_sandbox, 0) if "restarted" in line or "ALERT" in line] \
        + hook_events(on_sandbox)


@pytest.fixture(scope="module")
def watched(session_actions, on_sandbox, sandbox_data):
    """A watchdog with no memory of earlier tests; afterwards the model serves and the bound is reset."""
    container = sandbox_data["vllm_container_name"]
    fresh = (f"systemctl stop sparkdeploy-watchdog.timer sparkdeploy-watchdog.service; "
             f"rm -f {STATE_DIR}/*.json {HOOK_EVENTS}; systemctl start sparkdeploy-watchdog.timer")
    on_sandbox(fresh)
    yield container
    on_sandbox(f"docker exec {container} rm -f {WEDGE} || true; docker start {container} >/dev/null")
    on_sandbox(fresh)


def started_at(on_sandbox, container: str) -> str:
    return on_sandbox(f"docker inspect --format '{{{{.State.StartedAt}}}}' {container}").strip()


def record(on_sandbox) -> dict:
    text = on_sandbox(f"cat {STATE_DIR}/model-openai_gpt-oss-120b.json 2>/dev/null || echo '{{}}'")
    return json.loads(text)


def hook_events(on_sandbox) -> list[str]:
    text = on_sandbox(f"cat {HOOK_EVENTS} 2>/dev/null || true")
    return [json.loads(line)["event"] for line in text.splitlines() if line.strip()]


def journal(on_sandbox, since: float) -> list[str]:
    text = on_sandbox(f"journalctl -t sparkdeploy-watchdog -o cat --no-pager --since @{since:.0f}")
    return [line for line in text.splitlines() if line.strip() and line != "-- No entries --"]


def wait_for(what: str, condition, bound: float = _BOUND):
    deadline = time.monotonic() + bound
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {bound:.0f} s"
        time.sleep(1)
    return result


def passes_after(on_sandbox, count: int) -> None:
    """Wait until the watchdog has made ``count`` more passes."""
    seen = {record(on_sandbox).get("checked_at")}

    def more() -> bool:
        seen.add(record(on_sandbox).get("checked_at"))
        return len(seen) > count

    wait_for(f"{count} watchdog passes", more)


def wedge(on_sandbox, container: str) -> None:
    on_sandbox(f"docker exec {container} touch {WEDGE}")


def status(sparkdeploy) -> dict:
    result = sparkdeploy("status", "--limit", HOST_NAME, "--json")
    documents = json.loads(result.stdout)
    return next(model for document in documents if document["host"] == HOST_NAME
                for model in document["models"])


def test_a_healthy_model_is_never_restarted(session_actions, watched, on_sandbox):
    assert session_actions == [], "the watchdog acted while the earlier tests ran"
    since, before = time.time(), started_at(on_sandbox, watched)
    passes_after(on_sandbox, 8)
    assert started_at(on_sandbox, watched) == before
    assert journal(on_sandbox, since) == []
    assert record(on_sandbox)["failures"] == 0 and hook_events(on_sandbox) == []


def test_a_wedged_model_is_restarted_once_and_then_answers(watched, on_sandbox, sparkdeploy):
    since, before = time.time(), started_at(on_sandbox, watched)
    wedge(on_sandbox, watched)
    wait_for("the restart", lambda: started_at(on_sandbox, watched) != before)
    passes_after(on_sandbox, 3)
    lines = journal(on_sandbox, since)
    restarted = [index for index, line in enumerate(lines) if "restarted after 2 failed probes" in line]
    assert len(restarted) == 1, lines
    assert sum("failed:" in line for line in lines[:restarted[0]]) == 2, lines
    assert not any("failed" in line for line in lines[restarted[0] + 1:]), "a probe failed after the restart"
    assert hook_events(on_sandbox) == ["restarted"]
    assert record(on_sandbox)["failures"] == 0
    assert status(sparkdeploy)["state"] == "serving"


def test_rewedging_stops_at_the_bound_with_one_alert(watched, on_sandbox, sparkdeploy):
    before = started_at(on_sandbox, watched)
    wedge(on_sandbox, watched)
    wait_for("the second restart", lambda: started_at(on_sandbox, watched) != before)
    second, since = started_at(on_sandbox, watched), time.time()
    wedge(on_sandbox, watched)
    wait_for("the alert", lambda: "gave-up" in hook_events(on_sandbox))
    passes_after(on_sandbox, 5)
    assert started_at(on_sandbox, watched) == second, "restarted past watchdog_max_restarts"
    alerts = [line for line in journal(on_sandbox, since) if line.startswith("ALERT")]
    assert len(alerts) == 1 and "not restarting again" in alerts[0], alerts
    assert hook_events(on_sandbox) == ["restarted", "restarted", "gave-up"]
    # left as it is for a person: wedged, and status says so
    assert status(sparkdeploy)["state"] == "wedged"


def test_status_shows_a_stopped_model_down_and_a_started_one_serving(watched, on_sandbox, sparkdeploy):
    on_sandbox(f"docker stop {watched} >/dev/null")
    model = status(sparkdeploy)
    assert model["state"] == "down" and "exited" in model["detail"], model
    on_sandbox(f"docker start {watched} >/dev/null")  # a new engine: the wedge is gone
    model = wait_for("serving again", lambda: (found := status(sparkdeploy))["state"] == "serving" and found)
    assert model["image_id"].startswith("sha256:") and model["recipe"] == "openai-gpt-oss-120b"
    assert "restarted after 2 failed probes" in model["last_action"]["what"]
