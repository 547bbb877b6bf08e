"""The recipe's weights on the host: complete where vLLM reads them, the hub token private, vLLM
told to stay offline."""

from __future__ import annotations

import pytest

from sparkdeploy.facts import HubSnapshot
from sparkdeploy.vllm_service import build_vllm_service
from sparkdeploy.weights import check_snapshot, parse_listing, weights_plans


@pytest.fixture(scope="module")
def every_plan(host_data):
    service = build_vllm_service("host", host_data)
    if service is None:
        pytest.skip("this host serves no model")
    return weights_plans("host", host_data, service.repos, service.recipe.source)


@pytest.fixture(scope="module")
def plan(every_plan):
    return every_plan[0]


def test_every_repository_vllm_loads_is_complete_and_readable_by_root(host, host_data, every_plan):
    for plan in every_plan:
        command = HubSnapshot().command(plan.cache_dir, plan.repo_id, plan.revision)
        listing = parse_listing(host.run(command).stdout.splitlines())
        expect_nfs = plan.store == "nfs" and host_data.get("host_can_mount_nfs", True)
        verdict = check_snapshot(listing, plan, expect_nfs=expect_nfs)
        assert verdict.complete, f"{plan.role} {plan.label}: {verdict.reason}"


def test_no_download_is_left_running_or_failed(host, plan):
    status = host.file(f"{plan.run_dir}/status.json")
    if plan.store == "nfs" or not status.exists:
        pytest.skip("the deploy never downloaded here")
    assert '"state": "done"' in status.content_string


def test_the_hub_token_file_is_the_service_users_alone(host, host_data, plan):
    token = host.file(plan.token_path)
    if not token.exists:
        assert not host_data.get("model_hub_token"), "a token is configured but not on the host"
        pytest.skip("no hub token on this host")
    assert (token.user, token.mode) == (host_data["service_user"], 0o600)


def test_vllm_runs_offline_once_the_weights_are_local(host, host_data, plan):
    if not host_data.get("model_hub_offline", True):
        pytest.skip("model_hub_offline is off for this host")
    compose = host.file(f"{host_data['vllm_compose_dir']}/compose.yaml")
    assert compose.contains("HF_HUB_OFFLINE: '1'")
