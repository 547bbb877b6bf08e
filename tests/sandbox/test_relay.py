"""The relay on the sandbox (group_data/sandbox.py enables it): reachable only with its key,
relaying to both models through the real proxy, driven by the real Claude Code CLI over MCP,
restarted only when its own files change (its settings are drift-checked in test_drift.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from sparkdeploy.clients import relay_mcp_config
from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.sandbox.state import HOST_NAME
from sparkdeploy.secrets import PROXY_SECRETS, RELAY_SECRETS, host_secrets
from sparkdeploy.tunnel import SshTunnel

GPT_OSS, QWEN = "openai/gpt-oss-120b", "qwen3.6-35b-a3b"


@pytest.fixture(scope="module")
def tunnel(converged, sandbox_data) -> Iterator[SshTunnel]:
    with SshTunnel(HOST_NAME, sandbox_data) as connection:
        yield connection


@pytest.fixture(scope="module")
def relay_url(tunnel, sandbox_data) -> str:
    return f"http://127.0.0.1:{tunnel.forward('127.0.0.1', sandbox_data['relay_port'])}"


@pytest.fixture(scope="module")
def relay_key(sandbox_data) -> str:
    return host_secrets(HOST_NAME, sandbox_data, RELAY_SECRETS)["relay_api_key"]


def test_only_the_key_opens_the_relay_and_it_reaches_both_models_through_the_proxy(relay_url, relay_key):
    assert httpx.get(f"{relay_url}/v1/conversations", timeout=30).status_code == 401
    with httpx.Client(base_url=relay_url, timeout=120,
                      headers={"Authorization": f"Bearer {relay_key}"}) as api:
        assert set(api.get("/v1/models").json()["models"]) == {GPT_OSS, QWEN}
        created = api.post("/v1/conversations", json={"participants": [
            {"name": "oss", "model": GPT_OSS}, {"name": "qwen", "model": QWEN}]})
        assert created.status_code == 201, created.text
        replies = api.post(f"/v1/conversations/{created.json()['id']}/messages",
                           json={"content": "Hello, both."}).json()["messages"]
        assert [(m["speaker"], m.get("error"), m.get("finish_reason")) for m in replies] == [
            ("caller", None, None), ("oss", None, "stop"), ("qwen", None, "stop")]


def test_claude_code_starts_a_conversation_with_a_local_model_over_mcp(
        converged, tunnel, relay_url, relay_key, sandbox_data, tmp_path):
    """Claude Code -> proxy -> stand-in model, which calls the relay's MCP tool; Claude Code
    calls it on the relay, which asks the model through the proxy; the reply comes back."""
    claude = subprocess.run([str(PROJECT_ROOT / "tests" / "sandbox" / "claude-code.sh")], check=True,
                            capture_output=True, text=True).stdout.strip()
    proxy_port = tunnel.forward("127.0.0.1", sandbox_data["proxy_port"])
    # the file `sparkdeploy clients` writes, reaching the relay through the tunnel
    config = relay_mcp_config(HOST_NAME, {**sandbox_data, "relay_client_url": relay_url})
    (tmp_path / "claude-mcp.json").write_text(json.dumps(config))
    (tmp_path / "home").mkdir()
    proxy_key = host_secrets(HOST_NAME, sandbox_data, PROXY_SECRETS)["proxy_master_key"]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"),
           sandbox_data["clients_relay_key_env"]: relay_key,
           "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{proxy_port}", "ANTHROPIC_AUTH_TOKEN": proxy_key,
           **{slot: GPT_OSS for slot in ("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
                                         "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL")},
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
           # the stand-in calls the tool it is told to; it does not search for deferred tools
           "ENABLE_TOOL_SEARCH": "false", "NO_PROXY": "127.0.0.1,localhost"}
    result = subprocess.run(
        [claude, "-p", f"Say hello to {QWEN}. [call:mcp__sparkrelay__talk]",
         "--mcp-config", str(tmp_path / "claude-mcp.json"), "--strict-mcp-config",
         "--allowedTools", "mcp__sparkrelay__talk", "--output-format", "json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["is_error"] is False, answer
    # the stand-in model quotes the tool result: the relay's record of the local model's reply
    assert answer["result"].startswith("The tool answered: {"), answer["result"]
    relayed = json.loads(answer["result"].removeprefix("The tool answered: "))
    assert relayed["reply"]["speaker"] == GPT_OSS and relayed["reply"]["finish_reason"] == "stop"
    with httpx.Client(base_url=relay_url, timeout=30, headers={"x-api-key": relay_key}) as api:
        kept = api.get(f"/v1/conversations/{relayed['conversation_id']}").json()
    assert [m["speaker"] for m in kept["messages"]] == ["Claude", GPT_OSS]
    assert kept["messages"][1]["content"] == relayed["reply"]["content"]


def test_a_changed_relay_setting_restarts_only_the_relay_and_turning_it_off_keeps_conversations(
        converged, changed_ops, containers, on_sandbox, sandbox_data):
    stored = set(on_sandbox(f"ls {sandbox_data['relay_data_dir']}").split())
    assert stored and all(name.startswith("c-") and name.endswith(".json") for name in stored), stored
    before = containers()
    others = {name: value for name, value in before.items() if name != "sparkrelay"}
    try:
        changed = changed_ops("relay_max_rounds=5")[HOST_NAME]
        assert [label for label in changed if "Start or update" in label] == [
            "Relay | Start or update the relay (docker compose up -d in /opt/sparkdeploy/relay)"], changed
        after = containers()
        assert after["sparkrelay"] != before["sparkrelay"]
        assert {name: value for name, value in after.items() if name != "sparkrelay"} == others

        changed_ops("relay_enabled=false")
        running = on_sandbox("docker ps --all --format '{{.Names}}'").split()
        assert "sparkrelay" not in running, running
        assert on_sandbox(f"test -e {sandbox_data['relay_compose_dir']} || echo gone").strip() == "gone"
        assert set(on_sandbox(f"ls {sandbox_data['relay_data_dir']}").split()) == stored
    finally:
        restored = changed_ops()[HOST_NAME]
    assert any("Start or update the relay" in label for label in restored), restored
    assert {name: value for name, value in containers().items() if name != "sparkrelay"} == others
    assert on_sandbox(f"stat -c %a {sandbox_data['relay_data_dir']}").strip() == "700"
