"""The relay's compose project, settings, key, client file and refusals, for the seed's Sparks."""

from __future__ import annotations

import json
import re
import stat

import pytest
import yaml

from sparkdeploy.clients import client_files
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import plan_host, validate_inventory
from sparkdeploy.secrets import host_secrets
from sparkdeploy.verify import plan_targets

PEGASUS, STELLA = "pegasus.home.arpa", "stella.home.arpa"
DIRECTORY = "/opt/sparkdeploy/relay"


def with_relay(inventory_data, **pegasus):
    """The seed inventory with the relay on pegasus, the proxy's host."""
    data = inventory_data()
    data[PEGASUS] = {**data[PEGASUS], "relay_enabled": True, **pegasus}
    return data


def relay_files(data):
    plan = plan_host(PEGASUS, data, validate_inventory(data))
    return {rendered.path: rendered for rendered in plan.relay_files}


def test_the_relay_runs_in_the_proxy_image_on_its_network_with_conversations_outside_the_project(
        inventory_data):
    data = with_relay(inventory_data)
    compose = yaml.safe_load(relay_files(data)[f"{DIRECTORY}/compose.yaml"].content)
    service = compose["services"]["relay"]
    assert service["image"] == data[PEGASUS]["proxy_image"]
    assert service["entrypoint"] == ["python3", "-m", "sparkrelay"]
    assert compose["networks"] == {"proxy": {"name": "litellm_default", "external": True}}
    assert "/var/lib/sparkdeploy/relay:/data" in service["volumes"]
    assert service["ports"] == ["0.0.0.0:4100:4100"]
    assert service["env_file"] == ["secrets.env"]
    assert service["restart"] == "unless-stopped"


def test_settings_name_every_model_of_the_site_with_its_context_and_hold_no_secret(inventory_data):
    data = with_relay(inventory_data, vllm_params={"max_model_len": 65536})
    files = relay_files(data)
    settings = json.loads(files[f"{DIRECTORY}/relay.json"].content)
    assert settings["upstream_url"] == "http://litellm:4000/v1"
    assert settings["models_file"] == "/relay/models/models.json"
    contexts = json.loads(files[f"{DIRECTORY}/models/models.json"].content)
    assert contexts["openai/gpt-oss-120b"] == {"context_tokens": 65536}
    assert "Qwen/Qwen3-Coder-30B-A3B-Instruct" in contexts  # stella's, through the proxy
    assert settings["turn_timeout"] == 600 and settings["max_rounds"] == 20
    keys = host_secrets(PEGASUS, data[PEGASUS], ("proxy_master_key", "relay_api_key"))
    public = "".join(rendered.content for rendered in files.values() if not rendered.secret)
    assert all(key not in public for key in keys.values())
    secrets_env = files[f"{DIRECTORY}/secrets.env"]
    assert secrets_env.secret and secrets_env.mode == "0600"
    assert secrets_env.content == (f"RELAY_API_KEY={keys['relay_api_key']}\n"
                                   f"RELAY_UPSTREAM_KEY={keys['proxy_master_key']}\n")
    modules = ("relay.py", "mcp_tools.py", "store.py")
    assert {f"{DIRECTORY}/sparkrelay/{name}" for name in modules} <= set(files)


def test_a_changed_setting_changes_the_compose_label_a_models_context_does_not(inventory_data):
    """compose recreates the relay when its label changes; a model's new max_model_len only
    rewrites models.json, which the relay re-reads (a model's change restarts only it)."""
    compose = f"{DIRECTORY}/compose.yaml"
    before = relay_files(with_relay(inventory_data))[compose].content
    assert LABEL.search(before)
    after = relay_files(with_relay(inventory_data, relay_max_rounds=5))[compose].content
    assert LABEL.search(before).group(1) != LABEL.search(after).group(1)
    assert relay_files(with_relay(inventory_data))[compose].content == before
    longer = relay_files(with_relay(inventory_data, vllm_params={"max_model_len": 8192}))
    assert longer[compose].content == before
    assert '"context_tokens": 8192' in longer[f"{DIRECTORY}/models/models.json"].content


LABEL = re.compile(r"io\.sparkdeploy\.mounted-files: ([0-9a-f]{16})")


def test_no_relay_files_unless_enabled(inventory_data):
    data = inventory_data()
    assert relay_files(data) == {}


@pytest.mark.parametrize(("host", "override", "key", "message"), [
    (STELLA, {"relay_enabled": True}, "relay_enabled", "proxy, which is off"),
    (PEGASUS, {"relay_enabled": True, "relay_port": 4000}, "relay_port", "also proxy_port"),
    (PEGASUS, {"relay_enabled": True, "relay_default_max_tokens": 99999}, "relay_default_max_tokens",
     "above relay_max_tokens"),
    (PEGASUS, {"relay_enabled": True, "relay_port": 0}, "relay_port", "not a TCP port"),
    (PEGASUS, {"relay_enabled": True, "relay_data_dir": "relative/dir"}, "relay_data_dir",
     "normalized absolute path"),
    (PEGASUS, {"relay_enabled": True, "relay_turn_timeout": -1}, "relay_turn_timeout",
     "positive whole number"),
])
def test_a_relay_that_cannot_run_is_refused_before_any_host(inventory_data, host, override, key, message):
    data = inventory_data()
    data[host] = {**data[host], **override}
    with pytest.raises(ConfigError, match=message) as refused:
        validate_inventory(data)
    assert refused.value.key == key


def test_claude_code_gets_an_mcp_file_reading_the_key_from_the_environment(inventory_data):
    data = with_relay(inventory_data)
    files = client_files(data, validate_inventory(data))
    content, mode = files[f"{PEGASUS}/claude-mcp.json"]
    assert json.loads(content) == {"mcpServers": {"sparkrelay": {
        "type": "http", "url": "http://pegasus.home.arpa:4100/mcp",
        "headers": {"Authorization": "Bearer ${SPARKRELAY_API_KEY}"}}}}
    assert stat.S_IMODE(mode) == 0o644
    key = host_secrets(PEGASUS, data[PEGASUS], ("relay_api_key",))["relay_api_key"]
    assert all(key not in text for text, _ in files.values())


def test_verify_adds_a_relay_target_for_the_first_model(inventory_data):
    data = with_relay(inventory_data)
    relays = [t for t in plan_targets([PEGASUS], data, validate_inventory(data)) if t.kind == "relay"]
    assert [(t.url, t.host_port, t.models) for t in relays] == [
        ("http://pegasus.home.arpa:4100", ("127.0.0.1", 4100), ("openai/gpt-oss-120b",))]
