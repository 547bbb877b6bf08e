"""``sparkdeploy verify``'s checks against the stand-in model server and canned proxy replies."""

from __future__ import annotations

import importlib.util
import io
import json
import threading

import httpx
import pytest

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.plan import validate_inventory
from sparkdeploy.verify import check_proxy, check_vllm, format_table, plan_targets

MODEL = "openai/gpt-oss-120b"


@pytest.fixture(scope="module")
def model_server():
    """The stand-in vLLM (tests/standins/model_server.py) on a free loopback port."""
    spec = importlib.util.spec_from_file_location("model_server",
                                                  PROJECT_ROOT / "tests" / "standins" / "model_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = module.StandinServer(("127.0.0.1", 0), [MODEL], io.StringIO())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_four_vllm_checks_pass_against_a_gpt_oss_like_server(model_server):
    fingerprints: set[str] = set()
    with httpx.Client(base_url=model_server, timeout=10) as client:
        results = check_vllm(client, "vllm spark", MODEL, fingerprints)
    assert [r.passed for r in results] == [True] * 4, format_table(results)
    assert fingerprints == {"fp_standin_vllm"}


def test_a_model_that_is_not_served_fails_the_listing(model_server):
    with httpx.Client(base_url=model_server, timeout=10) as client:
        results = check_vllm(client, "vllm spark", "other/model", set())
    assert not results[0].passed and MODEL in results[0].detail
    assert not results[1].passed and "HTTP 404" in results[1].detail
    assert results[3].detail == "skipped: the forced tool call failed"


def chat_server(message: dict, finish_reason: str) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": MODEL}]})
        return httpx.Response(200, json={"choices": [{"message": message, "finish_reason": finish_reason}]})
    return httpx.MockTransport(handle)


def test_leaked_harmony_text_instead_of_a_tool_call_fails():
    leak = {"role": "assistant", "content": "<|channel|>commentary to=functions.get_weather <|message|>{}"}
    with httpx.Client(base_url="http://vllm", transport=chat_server(leak, "stop")) as client:
        results = check_vllm(client, "vllm spark", MODEL, set())
    assert results[1].passed is False
    assert "finish_reason 'stop', 0 tool calls" in results[1].detail


def test_arguments_that_are_not_json_fail():
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Paris"}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    with httpx.Client(base_url="http://vllm", transport=chat_server(message, "tool_calls")) as client:
        results = check_vllm(client, "vllm spark", MODEL, set())
    assert results[1].passed and not results[2].passed
    assert "are not JSON" in results[2].detail
    assert not results[3].passed  # the round trip ends with tool_calls again, not stop


def anthropic_proxy(stop_reason: str, block: dict) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-api-key"] == "sk-test"
        if not json.loads(request.content)["stream"]:
            return httpx.Response(200, json={"content": [block], "stop_reason": stop_reason})
        events = [{"type": "message_start"},
                  {"type": "content_block_start", "index": 0, "content_block": block},
                  {"type": "content_block_stop", "index": 0},
                  {"type": "message_delta", "delta": {"stop_reason": stop_reason}},
                  {"type": "message_stop"}]
        body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    return httpx.MockTransport(handle)


def test_proxy_checks_pass_on_tool_use_streaming_and_not():
    block = {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}
    with httpx.Client(base_url="http://proxy", headers={"x-api-key": "sk-test"},
                      transport=anthropic_proxy("tool_use", block)) as client:
        results = check_proxy(client, "proxy spark", MODEL)
    assert [r.passed for r in results] == [True, True], format_table(results)


def test_proxy_checks_fail_on_text_with_end_turn():
    block = {"type": "text", "text": "to=functions.get_weather"}
    with httpx.Client(base_url="http://proxy", headers={"x-api-key": "sk-test"},
                      transport=anthropic_proxy("end_turn", block)) as client:
        results = check_proxy(client, "proxy spark", MODEL)
    assert [r.passed for r in results] == [False, False]
    assert "stop_reason 'end_turn'" in results[0].detail


def test_the_table_has_one_row_per_check_with_pass_or_fail(model_server):
    with httpx.Client(base_url=model_server, timeout=10) as client:
        table = format_table(check_vllm(client, "vllm spark", MODEL, set()))
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["RESULT", "ENDPOINT", "MODEL", "CHECK"]
    assert len(lines) == 5 and all(line.startswith("PASS") for line in lines[1:])


def test_targets_cover_each_model_server_and_each_proxy_with_its_site(inventory_data):
    data = inventory_data()
    targets = plan_targets(["pegasus.home.arpa", "stella.home.arpa"], data, validate_inventory(data))
    summary = [(t.kind, t.host_name, t.url, t.models) for t in targets]
    assert summary == [
        ("vllm", "pegasus.home.arpa", "http://pegasus.home.arpa:8000", ("openai/gpt-oss-120b",)),
        ("proxy", "pegasus.home.arpa", "http://pegasus.home.arpa:4000",
         ("openai/gpt-oss-120b", "Qwen/Qwen3-Coder-30B-A3B-Instruct")),
        ("vllm", "stella.home.arpa", "http://stella.home.arpa:8000", ("Qwen/Qwen3-Coder-30B-A3B-Instruct",)),
    ]
    assert targets[1].host_port == ("127.0.0.1", 4000)
