"""Two models on the sandbox at once (group_data/sandbox.py: gpt-oss-120b and a Qwen beside it),
inside a Spark's budget: started one after the other, both served through the proxy and listed
for clients, one changed without touching the other, and an exclusive group switched."""

from __future__ import annotations

import json

import pytest

from sparkdeploy.sandbox.state import HOST_NAME

QWEN = "qwen3.6-35b-a3b"
GPT_OSS = "openai/gpt-oss-120b"


@pytest.fixture(scope="module")
def qwen(sandbox_data) -> dict:
    return next(model for model in sandbox_data["models"] if model["name"] == "qwen")


# --data reaches every inventory host and every host is validated: these keep the seed's two
# Spark examples within the budget while the sandbox's models change (the sandbox's recipe
# already runs at 4096, so nothing changes for it).
_EVERY_HOST = {"vllm_memory_gib": 69, "vllm_params": {"max_model_len": 4096}}


def models_data(*models: dict, **extra) -> list[str]:
    values = {**_EVERY_HOST, "models": list(models), **extra}
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def test_the_engines_start_one_after_the_other(converged, changed_ops, on_sandbox, sandbox_data):
    base = sandbox_data["vllm_container_name"]
    on_sandbox(f"docker stop {base} {base}-qwen >/dev/null")
    labels = changed_ops()[HOST_NAME]
    first_answers = next(i for i, label in enumerate(labels)
                         if label.startswith("Serving stack | Wait until vLLM answers"))
    second_starts = next(i for i, label in enumerate(labels) if "Start or update vLLM qwen" in label)
    cache_dropped = [i for i, label in enumerate(labels) if "before vLLM starts" in label]
    assert first_answers < second_starts, labels
    assert len(cache_dropped) == 2 and cache_dropped[1] > first_answers, labels  # dropped before each


def test_verify_passes_for_both_models_through_the_proxy(converged, sparkdeploy):
    result = sparkdeploy("verify", "--limit", HOST_NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    proxied = [line for line in result.stdout.splitlines() if line.startswith("PASS") and "proxy" in line]
    assert any(QWEN in line for line in proxied) and any(GPT_OSS in line for line in proxied), result.stdout


def test_the_clients_files_list_both_models(converged, sparkdeploy, tmp_path):
    result = sparkdeploy("clients", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    opencode = json.loads((tmp_path / HOST_NAME / "opencode.json").read_text())
    assert {QWEN, GPT_OSS} <= set(json.dumps(opencode).replace('\\"', '"').split('"'))
    assert (tmp_path / HOST_NAME / "claude-qwen3-6-35b-a3b.sh").exists()


def test_changing_one_model_restarts_only_it(converged, changed_ops, containers, sandbox_data, qwen):
    base = sandbox_data["vllm_container_name"]
    before = containers()
    try:
        changed = changed_ops(*models_data({**qwen, "vllm_params": {"max_model_len": 32768}}))[HOST_NAME]
        assert [label for label in changed if "Start or update" in label] == [
            "Serving stack | Start or update vLLM qwen (docker compose up -d in /opt/sparkdeploy/vllm-qwen)"
        ], changed
        after = containers()
        assert after[f"{base}-qwen"] != before[f"{base}-qwen"]
        # the relay re-reads the new context (models.json): it keeps running too
        kept = (base, "litellm", "litellm-db", "sparkrelay")
        assert {name: after[name] for name in kept} == {name: before[name] for name in kept}
    finally:
        changed_ops()


def test_switching_an_exclusive_group_stops_the_old_before_starting_the_new(
        converged, changed_ops, on_sandbox, sandbox_data, sparkdeploy, qwen):
    base = sandbox_data["vllm_container_name"]
    longer = {**qwen, "name": "qwen-long", "exclusive_group": "side",
              "vllm_params": {"max_model_len": 262144, "port": 8001}}
    switched = models_data({**qwen, "exclusive_group": "side"}, longer, models_active={"side": "qwen-long"})
    try:
        changed = changed_ops(*switched)[HOST_NAME]
        stop = next(i for i, label in enumerate(changed)
                    if "docker compose down in /opt/sparkdeploy/vllm-qwen)" in label)
        start = next(i for i, label in enumerate(changed) if "Start or update vLLM qwen-long" in label)
        assert stop < start, changed
        running = on_sandbox("docker ps --format '{{.Names}}'").split()
        assert f"{base}-qwen-long" in running and f"{base}-qwen" not in running, running
        assert on_sandbox("test -e /opt/sparkdeploy/vllm-qwen || echo gone").strip() == "gone"
        data_args = [arg for item in switched for arg in ("--data", item)]
        result = sparkdeploy("verify", "--limit", HOST_NAME, *data_args)
        assert result.returncode == 0 and "FAIL" not in result.stdout, result.stdout + result.stderr
        assert changed_ops(*switched) == {}, "a converged switch changes nothing"
    finally:
        changed_ops()
    running = on_sandbox("docker ps --format '{{.Names}}'").split()
    assert f"{base}-qwen" in running and f"{base}-qwen-long" not in running, running
