"""The relay as deployed: running beside the proxy, its key required, conversations kept apart."""

from __future__ import annotations

import json

import pytest

from sparkdeploy.relay import CONTAINER, relay_image
from sparkdeploy.vllm_service import local_url


@pytest.fixture(scope="module")
def relay(host, host_data):
    if not host_data.get("relay_enabled"):
        pytest.skip("this host runs no relay")
    result = host.run(f"docker container inspect {CONTAINER}")
    assert result.rc == 0, f"no relay container: {result.stderr}"
    return json.loads(result.stdout)[0]


def test_the_relay_runs_in_its_image_on_the_proxys_network_and_restarts_on_its_own(relay, host_data):
    assert relay["State"]["Running"]
    assert relay["Config"]["Image"] == relay_image(host_data)
    assert relay["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert "litellm_default" in relay["NetworkSettings"]["Networks"]
    assert (relay["State"].get("Health") or {}).get("Status") != "unhealthy"


def test_the_relay_answers_health_and_refuses_requests_without_its_key(host, host_data, relay):
    url = local_url(host_data["relay_bind_address"], host_data["relay_port"])
    assert host.run(f"curl -fsS --max-time 10 {url}/health").rc == 0
    refused = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {url}/v1/conversations")
    assert refused.stdout.strip() == "401"


def test_conversations_and_the_key_are_readable_by_root_only(host, host_data, relay):
    data_dir = host.file(host_data["relay_data_dir"])
    assert data_dir.is_directory and (data_dir.user, data_dir.mode) == ("root", 0o700)
    secrets_env = host.file(f"{host_data['relay_compose_dir']}/secrets.env")
    assert (secrets_env.user, secrets_env.mode) == ("root", 0o600)
