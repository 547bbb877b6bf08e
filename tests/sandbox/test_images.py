"""Issue 11 end to end: upstream's image families deploy as upstream makes them.

A ``vllm-node`` recipe (prebuilt image pulled and tagged by the stand-in upstream's
build-and-copy.sh from the stand-in registry, a mod, a speculative draft model) deploys and
passes ``verify``; a second deploy pulls nothing; a moved pin is one pull and one vLLM restart;
an image replaced under the host is drift. The mxfp4 recipe (a local build) is the sandbox's
default and is covered by test_serving.py.
"""

from __future__ import annotations

import json
import re

import pytest

from sparkdeploy.sandbox.lifecycle import SANDBOX_DIR
from sparkdeploy.sandbox.state import HOST_NAME
from sparkdeploy.standins import registry_digests

PULL = "Start pulling"
VLLM_UP = "Start or update vLLM"
PROXY_UP = "Start or update the LiteLLM proxy"
DFLASH = "recipe=tests/standins/recipes/qwen3.6-35b-a3b-dflash.yaml"
REGISTRY_LOG = SANDBOX_DIR / "registry.log"


def manifest_requests() -> int:
    """Manifest requests the stand-in registry's access log shows: a pull makes at least one."""
    lines = REGISTRY_LOG.read_text(errors="replace").splitlines() if REGISTRY_LOG.exists() else []
    return sum(bool(re.search(r'"(HEAD|GET) /v2/eugr/spark-vllm/manifests/', line)) for line in lines)


def labels(on_sandbox, image: str) -> dict[str, str]:
    return json.loads(on_sandbox(f"docker image inspect --format '{{{{json .Config.Labels}}}}' {image}"))


@pytest.fixture(scope="module")
def prebuilt(converged, changed_ops, on_sandbox):
    """The sandbox switched to the vllm-node recipe for this module, and back afterwards."""
    # nothing pulled before: each pull below has to reach the registry
    on_sandbox("docker rmi -f vllm-node $(docker images -q sparkdeploy-standins:47382/eugr/spark-vllm) "
               ">/dev/null 2>&1; true")
    pulls = manifest_requests()
    changed = changed_ops(DFLASH)[HOST_NAME]
    yield changed, manifest_requests() - pulls
    changed_ops()


def test_the_prebuilt_image_is_pulled_and_tagged_by_upstreams_script(prebuilt, on_sandbox, sandbox_data):
    changed, pulls = prebuilt
    assert sum(PULL in label for label in changed) == 1, changed
    assert pulls >= 1
    image = labels(on_sandbox, "vllm-node")
    assert json.loads(image["io.sparkdeploy.image"]) == {
        "method": "prebuilt", "upstream_commit": sandbox_data["upstream_commit"], "build_args": []}
    assert image["io.sparkdeploy.image.digest"] == registry_digests()["eugr/spark-vllm:latest"]["digest"]
    log = on_sandbox("cat /var/log/sparkdeploy/image-vllm-node.log")
    assert "Using prebuilt runner image sparkdeploy-standins:47382/eugr/spark-vllm:latest" in log


def test_the_draft_model_was_fetched_with_the_model_and_verify_passes(prebuilt, sparkdeploy, on_sandbox):
    for repo in ("models--Qwen--Qwen3.6-35B-A3B-FP8", "models--z-lab--Qwen3.6-35B-A3B-DFlash"):
        snapshot = on_sandbox(f"ls /home/cluster/.cache/huggingface/hub/{repo}/snapshots/*/config.json")
        assert snapshot.strip(), repo
    result = sparkdeploy("verify", "--limit", HOST_NAME, "--data", DFLASH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Qwen/Qwen3.6-35B-A3B-FP8" in result.stdout and "FAIL" not in result.stdout


def test_a_second_deploy_pulls_and_changes_nothing(prebuilt, changed_ops):
    pulls = manifest_requests()
    assert changed_ops(DFLASH) == {}
    assert manifest_requests() == pulls


def test_a_moved_pin_is_one_pull_and_one_vllm_restart(prebuilt, changed_ops, on_sandbox, containers,
                                                    sandbox_data):
    later = registry_digests()["eugr/spark-vllm:nightly-2"]["digest"]
    pin = "vllm_image_pins=" + json.dumps({"vllm-node": later})
    before, pulls = containers(), manifest_requests()
    changed = changed_ops(DFLASH, pin)[HOST_NAME]
    assert sum(PULL in label for label in changed) == 1, changed
    assert sum(VLLM_UP in label for label in changed) == 2, changed  # the recipe and qwen share the image
    assert not any(PROXY_UP in label for label in changed), changed
    assert manifest_requests() > pulls
    after = containers()
    vllm = sandbox_data["vllm_container_name"]
    assert after[vllm] != before[vllm] and after["litellm"] == before["litellm"]
    assert labels(on_sandbox, "vllm-node")["io.sparkdeploy.image.digest"] == later
    assert changed_ops(DFLASH, pin) == {}, "the same pin again must change nothing"


def test_an_image_replaced_under_the_host_is_drift_that_a_deploy_repairs(prebuilt, changed_ops,
                                                                         on_sandbox, drift_check):
    changed_ops()  # the sandbox's own recipe: vllm-node-mxfp4, built locally
    on_sandbox("docker tag sparkdeploy-standins/vllm-runtime:current vllm-node-mxfp4")
    result = drift_check()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "vllm-node-mxfp4" in result.stdout and "does not record what it was built from" in result.stdout
    changed_ops()
    assert drift_check().returncode == 0
