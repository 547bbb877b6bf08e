"""Issue 6 end to end: deploy -> verify through the real proxy -> nothing rebuilt or restarted on a
second deploy -> a new pinned commit rebuilds the image once and restarts vLLM once, not the proxy.

Needs the stand-ins in the sandbox (``sparkdeploy sandbox up`` installs them).
"""

from __future__ import annotations

import json
from typing import Any

from sparkdeploy.sandbox.state import HOST_NAME
from sparkdeploy.standins import ensure_upstream_repo

BUILD = "Start building"
PULL = "Start pulling"
VLLM_UP = "Start or update vLLM"
PROXY_UP = "Start or update the LiteLLM proxy"


def image_label(on_sandbox, image: str) -> dict[str, Any]:
    return json.loads(on_sandbox(f"docker image inspect --format "
                                 f"'{{{{index .Config.Labels \"io.sparkdeploy.image\"}}}}' {image}"))


def test_verify_passes_through_the_real_proxy_with_the_callback(converged, sparkdeploy, on_sandbox):
    result = sparkdeploy("verify", "--limit", HOST_NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    # 6 per model, 2 for the relay (refused without its key, a relayed turn)
    assert result.stdout.count("PASS") == 14 and "FAIL" not in result.stdout
    assert "relayed turn (create, say, delete)" in result.stdout
    assert "system_fingerprint: fp_standin_vllm" in result.stdout
    assert "litellm_tool_fix" in on_sandbox("cat /opt/sparkdeploy/litellm/config.yaml")


def test_a_second_deploy_rebuilds_and_restarts_nothing(converged, changed_ops, containers):
    before = containers()
    changes = changed_ops()
    assert changes == {}, f"a converged deploy still changed: {changes}"
    assert containers() == before


def test_a_new_pinned_commit_remakes_each_image_once_and_restarts_only_vllm(converged, changed_ops,
                                                                            containers, on_sandbox,
                                                                            sandbox_data):
    pinned = sandbox_data["upstream_commit"]
    later = [commit for commit in ensure_upstream_repo() if commit != pinned][-1]
    image = "vllm-node-mxfp4"
    before = containers()
    try:
        changed = changed_ops(f"upstream_commit={later}")[HOST_NAME]
        # the recipe's mxfp4 image is built again, the prebuilt one beside it pulled again; both
        # models restart (each image records the commit it came from)
        assert sum(BUILD in label for label in changed) == 1, changed
        assert sum(PULL in label for label in changed) == 1, changed
        assert sum(VLLM_UP in label for label in changed) == 2, changed
        assert not any(PROXY_UP in label for label in changed), changed
        after = containers()
        vllm = sandbox_data["vllm_container_name"]
        assert after[vllm] != before[vllm] and after[f"{vllm}-qwen"] != before[f"{vllm}-qwen"]
        assert after["litellm"] == before["litellm"] and after["litellm-db"] == before["litellm-db"]
        assert image_label(on_sandbox, image)["upstream_commit"] == later
        assert changed_ops(f"upstream_commit={later}") == {}, "the same commit again must change nothing"
    finally:
        changed_ops()  # back to the pinned commit, for the tests after this one
    assert image_label(on_sandbox, image)["upstream_commit"] == pinned


def test_switching_the_recipe_is_one_data_change_and_one_deploy(converged, changed_ops, containers,
                                                                 sparkdeploy,
                                                                 sandbox_data):
    name = sandbox_data["vllm_container_name"]
    switched = "recipe=tests/standins/recipes/gpt-oss-120b-coder.yaml"
    before = containers()
    try:
        changed = changed_ops(switched)[HOST_NAME]
        assert sum(VLLM_UP in label for label in changed) == 1, changed
        assert sum(PROXY_UP in label for label in changed) == 1, changed  # its route list changed
        assert not any(BUILD in label for label in changed), "same image and build args: no build"
        assert containers()[name] != before[name], "the old model server must be replaced"
        result = sparkdeploy("verify", "--limit", HOST_NAME, "--data", switched)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "gpt-oss-coder" in result.stdout and "FAIL" not in result.stdout
    finally:
        changed_ops()  # back to the sandbox's recipe for the tests after this one


def test_a_vllm_api_key_is_enforced_and_the_proxy_is_given_it(converged, changed_ops, sparkdeploy, on_sandbox,
                                                              sandbox_data):
    keyed = "vllm_api_key_enabled=true"
    try:
        changed = changed_ops(keyed)[HOST_NAME]
        assert sum(VLLM_UP in label for label in changed) == 2, changed  # every model gets the key
        assert sum(PROXY_UP in label for label in changed) == 1, changed
        url = f"http://{sandbox_data['vllm_private_address']}:8000/v1/models"
        status = on_sandbox(f"curl -s -o /dev/null -w '%{{http_code}}' {url}", check=False)
        assert status == "401", "vLLM must refuse a request without its key"
        assert on_sandbox("stat -c %a /opt/sparkdeploy/vllm/secrets.env").strip() == "600"
        result = sparkdeploy("verify", "--limit", HOST_NAME, "--data", keyed)
        assert result.returncode == 0, result.stdout + result.stderr  # vLLM with the key, and the proxy
        assert "FAIL" not in result.stdout
    finally:
        changed_ops()
