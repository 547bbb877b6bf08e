"""The stand-in vLLM started the way the sandbox image starts it: with vLLM's own command line."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from loopback_servers import STANDIN_SCRIPT, free_port, stop, wait_until_up

BASH = {"type": "function", "function": {"name": "Bash", "description": "Run a command.", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}


@pytest.fixture(scope="module")
def vllm_style_server(tmp_path_factory):
    """``model_server.py serve MODEL --flags...`` as the recipe's ``vllm serve`` line would run it."""
    port, log = free_port(), tmp_path_factory.mktemp("vllm-style") / "server.log"
    command = [sys.executable, str(STANDIN_SCRIPT), "serve", "openai/gpt-oss-120b",
               "--tool-call-parser", "openai", "--reasoning-parser", "openai_gptoss",
               "--enable-auto-tool-choice", "--tensor-parallel-size", "1", "--max-model-len", "4096",
               "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, 20, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)


def chat(base_url: str, messages: list[dict], **extra) -> httpx.Response:
    return httpx.post(f"{base_url}/chat/completions", timeout=10,
                      json={"model": "openai/gpt-oss-120b", "messages": messages, **extra})


def test_serves_the_model_named_on_the_vllm_command_line(vllm_style_server):
    models = httpx.get(f"{vllm_style_server}/models", timeout=10).json()
    assert [model["id"] for model in models["data"]] == ["openai/gpt-oss-120b"]


def test_clean_tool_call_then_text_after_the_tool_result(vllm_style_server):
    ask = [{"role": "user", "content": "Use Bash to list files."}]
    reply = chat(vllm_style_server, ask, tools=[BASH]).json()
    choice = reply["choices"][0]
    assert reply["system_fingerprint"] and choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "Bash" and json.loads(call["function"]["arguments"])["command"]
    result = [*ask, {"role": "assistant", "tool_calls": [call]},
              {"role": "tool", "tool_call_id": call["id"], "content": "a.txt"}]
    after = chat(vllm_style_server, result, tools=[BASH]).json()["choices"][0]
    assert after["finish_reason"] == "stop" and after["message"]["content"]


def test_streams_chunks_ending_in_done(vllm_style_server):
    with httpx.stream("POST", f"{vllm_style_server}/chat/completions", timeout=10, json={
            "model": "openai/gpt-oss-120b", "stream": True, "tools": [BASH],
            "messages": [{"role": "user", "content": "[harmony-leak] Use Bash."}]}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    content = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert "to=functions.Bash" in content and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_unknown_model_is_a_404_like_vllm(vllm_style_server):
    response = httpx.post(f"{vllm_style_server}/chat/completions", timeout=10,
                          json={"model": "other", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 404


def test_vllm_api_key_from_the_environment_guards_every_v1_route(tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(STANDIN_SCRIPT), "serve", "openai/gpt-oss-120b", "--host", "127.0.0.1",
             "--port", str(port)], stdout=output, stderr=subprocess.STDOUT,
            env={"VLLM_API_KEY": "key-from-the-env-file", "PATH": "/usr/bin:/bin"})
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, 20, log)
        base = f"http://127.0.0.1:{port}/v1"
        assert httpx.get(f"{base}/models", timeout=10).status_code == 401
        wrong = httpx.get(f"{base}/models", timeout=10, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = httpx.get(f"{base}/models", timeout=10,
                          headers={"Authorization": "Bearer key-from-the-env-file"})
        assert right.json()["data"][0]["id"] == "openai/gpt-oss-120b"
    finally:
        stop(process)
