"""The serving stack as deployed: vLLM and the proxy running as their data says, on a current image."""

from __future__ import annotations

import json

import pytest

from sparkdeploy.data import upstream_checkout_dir
from sparkdeploy.image_plan import BUILD, DIGEST_LABEL, IMAGE_LABEL, ImageRecord, image_reason
from sparkdeploy.models import active_entries
from sparkdeploy.proxy import proxy_compose
from sparkdeploy.vllm_service import build_vllm_service, local_url


@pytest.fixture(scope="module")
def models(host_data):
    """Every model the host serves (its recipe, and those beside it), as the deploy built them."""
    found = [build_vllm_service("checked host", entry.data)
             for entry in active_entries("checked host", host_data)]
    if not found:
        pytest.skip("this host serves no model")
    return found


@pytest.fixture(scope="module")
def vllm(models):
    return models[0]


def inspect(host, kind: str, name: str) -> dict:
    result = host.run(f"docker {kind} inspect {name}")
    assert result.rc == 0, f"no {kind} {name}: {result.stderr}"
    return json.loads(result.stdout)[0]


def test_vllm_runs_with_bounded_restarts_and_is_the_oom_killers_first_choice(host, host_data, models):
    for service in models:
        container = inspect(host, "container", service.container_name)
        assert container["State"]["Running"], service.container_name
        policy = container["HostConfig"]["RestartPolicy"]
        assert policy["Name"] == "on-failure"
        assert policy["MaximumRetryCount"] == host_data["vllm_restart_max_attempts"]
        # the least important model keeps vllm_oom_score_adj; more important ones a lower score
        assert container["HostConfig"]["OomScoreAdj"] == service.data["vllm_oom_score_adj"]
        assert container["HostConfig"]["OomScoreAdj"] <= host_data["vllm_oom_score_adj"]
        assert container["HostConfig"]["NetworkMode"] == "host"
        assert (container.get("State", {}).get("Health") or {}).get("Status") != "unhealthy"


def test_vllm_answers_health(host, models):
    for service in models:
        assert host.run(f"curl -fsS --max-time 10 {service.local_url}/health").rc == 0, service.local_url


def test_vllm_listens_on_the_lan_only_when_data_says_so(host, host_data, models):
    expected = "0.0.0.0" if host_data["vllm_expose_to_lan"] else host_data["vllm_private_address"]
    for service in models:
        listeners = host.run(f"ss -Htln 'sport = :{service.port}'").stdout.split()
        assert f"{expected}:{service.port}" in listeners


def test_vllm_runs_the_current_image(host, models):
    for service in models:
        container = inspect(host, "container", service.container_name)
        image = inspect(host, "image", service.recipe.container)
        assert container["Image"] == image["Id"], f"{service.container_name} runs an older build of its image"


def test_the_image_records_how_it_was_made_as_its_plan_says(host, models):
    for vllm in models:
        labels = inspect(host, "image", vllm.recipe.container)["Config"]["Labels"] or {}
        record = ImageRecord(True, identity=json.loads(labels.get(IMAGE_LABEL) or "null"),
                             digest=labels.get(DIGEST_LABEL) or None)
        assert image_reason(record, vllm.image) is None, f"image labels: {labels}"
        if vllm.image.method != BUILD:
            assert record.digest, "a pulled image records the registry digest it came from"


def test_the_upstream_checkout_is_roots_at_the_pinned_commit_without_hooks(host, host_data, vllm):
    if not vllm.image.runs_upstream_script and not vllm.recipe.mods:
        pytest.skip("this recipe needs no upstream checkout")
    checkout = upstream_checkout_dir(host_data)
    head = host.run(f"git -c core.hooksPath=/dev/null -C {checkout} rev-parse HEAD")
    assert head.stdout.strip() == host_data["upstream_commit"]
    directory = host.file(checkout)
    assert (directory.user, directory.group) == ("root", "root")
    assert not directory.mode & 0o022, "only root may write the checkout root builds from"
    writable = host.run(f"find {checkout} -not -user root -o -perm /022 -not -type l | head -n 5")
    assert writable.stdout.strip() == "", f"not root's alone: {writable.stdout}"


@pytest.fixture(scope="module")
def proxy_services(host_data):
    if not host_data.get("proxy_enabled"):
        pytest.skip("this host runs no proxy")
    return proxy_compose(host_data)["services"]


def test_the_proxy_and_its_database_run_and_restart_on_their_own(host, proxy_services):
    for service in proxy_services.values():
        container = inspect(host, "container", service["container_name"])
        assert container["State"]["Running"], service["container_name"]
        assert container["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


def test_the_database_is_healthy(host, proxy_services):
    container = inspect(host, "container", proxy_services["litellm-db"]["container_name"])
    assert container["State"]["Health"]["Status"] == "healthy"


def test_the_proxy_is_alive(host, host_data, proxy_services):
    url = f"{local_url(host_data['proxy_bind_address'], host_data['proxy_port'])}/health/liveliness"
    assert host.run(f"curl -fsS --max-time 10 {url}").rc == 0
