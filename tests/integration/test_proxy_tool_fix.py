"""The agents' paths end to end: Anthropic and OpenAI SDKs -> LiteLLM proxy + tool-fix callback ->
stand-in vLLM.

The stand-in replays what gpt-oss behind vLLM sends (clean tool calls, Harmony leaked into
``content`` or the reasoning, with or without its special tokens, broken JSON, quoted Harmony);
the client must get ``tool_use`` blocks with ``stop_reason == "tool_use"`` (``tool_calls`` with
``finish_reason == "tool_calls"`` on /v1/chat/completions), streaming and not, and clean replies
unchanged.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

BASH = {"name": "Bash", "description": "Run a shell command.",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                         "required": ["command"]}}
EDIT = {"name": "Edit", "description": "Replace a string in a file.",
        "input_schema": {"type": "object", "properties": {
            "file_path": {"type": "string"}, "old_string": {"type": "string"},
            "new_string": {"type": "string"}, "replace_all": {"type": "boolean"}},
            "required": ["file_path", "old_string", "new_string"]}}
WRITE = {"name": "Write", "description": "Write a file.",
         "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                           "content": {"type": "string"}},
                          "required": ["file_path", "content"]}}
# Claude Code's shapes the pre-call hook fixes: an MCP tool with a null description, a deferred tool.
MCP_TOOL = {"name": "mcp__notes__search", "description": None,
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}
DEFERRED = {"name": "DeferredToolPlaceholder", "description": "Placeholder for deferred tools.",
            "defer_loading": True, "input_schema": {"type": "object", "properties": {}}}
FINAL_REPORT = {"name": "final_report", "description": "Report the result.",
                "input_schema": {"type": "object", "properties": {"title": {"type": "string"}},
                                 "required": ["title"]}}
TOOLS = [BASH, EDIT, WRITE, MCP_TOOL, DEFERRED]

STREAMING = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])


@pytest.fixture
def ask(client, proxy):
    """Send one Claude-Code-like request and return the SDK's final Message."""

    def send(prompt: str, stream: bool, tools: list[dict[str, Any]] | None = None):
        request = {"model": proxy.model, "max_tokens": 2048, "tools": TOOLS if tools is None else tools,
                   "messages": [{"role": "user", "content": prompt}]}
        if not stream:
            return client.messages.create(**request)
        with client.messages.stream(**request) as events:
            for _ in events:
                pass
            return events.get_final_message()

    return send


def blocks(message) -> list[tuple[str, Any]]:
    return [(block.type, block.name if block.type == "tool_use" else getattr(block, "text", None))
            for block in message.content]


def tool_uses(message) -> list[tuple[str, dict[str, Any]]]:
    return [(block.name, block.input) for block in message.content if block.type == "tool_use"]


def visible_text(message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def args(standin_module, tool: dict[str, Any], variant: int = 0) -> dict[str, Any]:
    """The arguments the stand-in writes for a tool (from its schema, as vLLM forwards it)."""
    as_forwarded = {"name": tool["name"], "parameters": tool["input_schema"]}
    return standin_module.example_arguments(as_forwarded, variant)


@STREAMING
def test_clean_tool_call_arrives_as_tool_use(ask, standin_module, stream):
    message = ask("[clean] Run Bash to list the files.", stream)
    assert tool_uses(message) == [("Bash", args(standin_module, BASH))]
    assert message.stop_reason == "tool_use"


@STREAMING
def test_clean_text_reply_is_unchanged(ask, standin_module, stream):
    message = ask("[text] Say hello.", stream)
    assert [(block.type, getattr(block, "thinking", None) or block.text) for block in message.content] == [
        ("thinking", standin_module.REASONING), ("text", standin_module.TEXT_REPLY)]
    assert message.stop_reason == "end_turn"


@STREAMING
def test_leaked_harmony_call_becomes_tool_use(ask, standin_module, stream):
    message = ask("[harmony-leak] Use Edit on the file.", stream)
    assert tool_uses(message) == [("Edit", args(standin_module, EDIT))]
    assert blocks(message) == [("tool_use", "Edit")]  # analysis dropped, no Harmony left as text
    assert message.stop_reason == "tool_use"


@STREAMING
def test_two_leaked_calls_become_two_tool_use_blocks(ask, standin_module, stream):
    message = ask("[harmony-leak-2] Use Edit, then Bash.", stream)
    assert tool_uses(message) == [("Edit", args(standin_module, EDIT, 0)),
                                  ("Bash", args(standin_module, BASH, 1))]
    assert len({block.id for block in message.content}) == 2
    assert message.stop_reason == "tool_use"


@STREAMING
def test_stripped_markers_are_recovered(ask, standin_module, stream):
    message = ask("[harmony-stripped] Use Write for the notes.", stream)
    assert tool_uses(message) == [("Write", args(standin_module, WRITE))]
    assert "analysis" not in visible_text(message)
    assert message.stop_reason == "tool_use"


@STREAMING
def test_multi_edit_leak_becomes_one_edit_per_element(ask, stream):
    message = ask("[harmony-multiedit] Edit two lines.", stream)
    assert [(name, tool_input["old_string"]) for name, tool_input in tool_uses(message)] == [
        ("Edit", "one"), ("Edit", "two")]
    assert message.stop_reason == "tool_use"


@STREAMING
def test_malformed_arguments_come_back_as_text_and_the_proxy_lives_on(ask, proxy, stream):
    message = ask("[harmony-malformed] Use Bash.", stream)
    assert tool_uses(message) == []
    assert visible_text(message).startswith("to=functions.Bash {")
    assert message.stop_reason == "end_turn"
    assert proxy.process.poll() is None
    assert tool_uses(ask("[harmony-leak] Use Bash.", stream)) != []


@STREAMING
def test_thinking_loses_leaked_tokens(ask, standin_module, stream):
    message = ask("[harmony-thinking] Say hello.", stream)
    assert message.content[0].type == "thinking"
    assert message.content[0].thinking == standin_module.REASONING
    assert visible_text(message) == standin_module.TEXT_REPLY


def test_leak_with_a_tool_the_client_did_not_offer_stays_text(ask):
    message = ask("[harmony-leak] Use Bash.", stream=True, tools=[EDIT, WRITE, BASH])
    assert tool_uses(message) == [("Bash", {"command": "echo standin 0"})]
    only_edit = ask("[harmony-multiedit] Edit two lines.", stream=True, tools=[BASH, WRITE])
    assert tool_uses(only_edit) == []
    assert visible_text(only_edit).startswith("to=functions.MultiEdit {")


def test_pre_call_hook_fixes_tool_definitions_before_vllm(ask, standin):
    marker = uuid.uuid4().hex
    ask(f"[text] hello {marker}", stream=True)
    forwarded = standin.request_containing(marker)["tools"]
    functions = {tool["function"]["name"]: tool["function"] for tool in forwarded}
    assert functions["mcp__notes__search"]["description"] == ""
    assert "defer_loading" not in functions["DeferredToolPlaceholder"]["parameters"]
    assert functions["DeferredToolPlaceholder"]["parameters"] == {"type": "object", "properties": {}}
    assert functions["Bash"]["description"] == BASH["description"]


def test_chat_completions_leak_is_repaired(proxy, standin_module):
    tools = [{"type": "function", "function": {"name": "Bash", "description": None,
                                               "parameters": BASH["input_schema"]}}]
    response = httpx.post(f"{proxy.base_url}/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {proxy.master_key}"},
                          json={"model": proxy.model, "tools": tools,
                                "messages": [{"role": "user", "content": "[harmony-leak] Use Bash."}]})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert not choice["message"]["content"]
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "Bash"
    assert json.loads(call["function"]["arguments"]) == args(standin_module, BASH)


def test_clean_chat_completion_is_unchanged(proxy, standin_module):
    response = httpx.post(f"{proxy.base_url}/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {proxy.master_key}"},
                          json={"model": proxy.model,
                                "messages": [{"role": "user", "content": "Say hello."}]})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (standin_module.TEXT_REPLY, "stop")


def test_repairs_are_logged_without_content(ask, proxy):
    ask("[harmony-leak] Use Edit on the file.", stream=True)
    ask("[harmony-leak] Use Edit on the file.", stream=False)
    lines = proxy.log_lines()
    assert any("streaming /v1/messages" in line and "tool call Edit recovered" in line for line in lines)
    assert any(" /v1/messages: " in line and "tool call Edit recovered" in line for line in lines)
    assert any("pre-call" in line for line in lines)
    assert not any("standin" in line or "user wants" in line for line in lines)


# -- the same cases through both endpoints, streaming and not -------------------------------------------

ENDPOINTS = ["messages", "messages-stream", "chat", "chat-stream"]


def replies(standin_module) -> dict[str, tuple[str, list[dict[str, Any]], list[tuple[str, Any]], str | None]]:
    """Prompt, tools, the calls the client must get and its visible text (None: not checked)."""
    container = f"to=container.exec {json.dumps(standin_module.CONTAINER_CALL)}"
    return {
        "leak": ("[harmony-leak] Use Bash.", TOOLS, [("Bash", args(standin_module, BASH))], ""),
        "stripped": ("[harmony-stripped] Use Write.", TOOLS, [("Write", args(standin_module, WRITE))], ""),
        "args-with-tokens": ("[harmony-args-tokens] Use Bash.", TOOLS,
                             [("Bash", standin_module.ARGS_WITH_TOKENS)], ""),
        "channel-word-name": ("[harmony-channel-word] Use final_report.", [BASH, FINAL_REPORT],
                              [("final_report", args(standin_module, FINAL_REPORT))], ""),
        "reasoning-only": ("[harmony-reasoning] Use Bash.", TOOLS,
                           [("Bash", args(standin_module, BASH))], ""),
        "container": ("[harmony-container] List the files.", TOOLS, [], container),
        "quoted": ("[harmony-quoted] Explain the format.", TOOLS, [], standin_module.QUOTED_HARMONY),
        "clean-text": ("[text] Say hello.", TOOLS, [], standin_module.TEXT_REPLY),
    }


def through(endpoint: str, client, openai_client, model: str, prompt: str,
            tools: list[dict[str, Any]]) -> tuple[list[tuple[str, Any]], str, str, str]:
    """(calls, visible text, stop reason, reasoning) as the client sees them."""
    if endpoint.startswith("messages"):
        request = {"model": model, "max_tokens": 2048, "tools": tools,
                   "messages": [{"role": "user", "content": prompt}]}
        if endpoint == "messages":
            message = client.messages.create(**request)
        else:
            with client.messages.stream(**request) as events:
                for _ in events:
                    pass
                message = events.get_final_message()
        thinking = "".join(block.thinking for block in message.content if block.type == "thinking")
        return tool_uses(message), visible_text(message), message.stop_reason, thinking
    functions = [{"name": tool["name"], "description": tool["description"],
                  "parameters": tool["input_schema"]}
                 for tool in tools]
    request = {"model": model, "messages": [{"role": "user", "content": prompt}],
               "tools": [{"type": "function", "function": function} for function in functions]}
    if endpoint == "chat":
        choice = openai_client.chat.completions.create(**request).choices[0]
        calls = [(call.function.name, json.loads(call.function.arguments))
                 for call in choice.message.tool_calls or []]
        reasoning = getattr(choice.message, "reasoning_content", None) or ""
        return calls, choice.message.content or "", choice.finish_reason, reasoning
    return _streamed_chat(openai_client.chat.completions.create(**request, stream=True))


def _streamed_chat(stream) -> tuple[list[tuple[str, Any]], str, str, str]:
    """What an OpenAI-SDK agent accumulates from a chat-completions stream."""
    content, reasoning, finish_reason = "", "", ""
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
            finish_reason = choice.finish_reason or finish_reason
    return ([(call["name"], json.loads(call["arguments"])) for _, call in sorted(calls.items())], content,
            finish_reason, reasoning)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", ["leak", "stripped", "args-with-tokens", "channel-word-name",
                                  "reasoning-only", "container", "quoted", "clean-text"])
def test_every_case_on_both_endpoints_streaming_and_not(client, openai_client, proxy, standin_module,
                                                        case, endpoint):
    prompt, tools, expected_calls, expected_text = replies(standin_module)[case]
    calls, text, stop_reason, reasoning = through(endpoint, client, openai_client, proxy.model, prompt, tools)
    assert calls == expected_calls
    assert text == expected_text
    anthropic = endpoint.startswith("messages")
    if expected_calls:
        assert stop_reason == ("tool_use" if anthropic else "tool_calls")
    else:
        assert stop_reason == ("end_turn" if anthropic else "stop")
    assert "<|" not in reasoning and "to=functions" not in reasoning


def test_chat_completions_stream_repairs_are_logged(openai_client, proxy):
    prompt = "[harmony-leak] Use Bash."
    _streamed_chat(openai_client.chat.completions.create(
        model=proxy.model, stream=True, messages=[{"role": "user", "content": prompt}],
        tools=[{"type": "function", "function": {"name": "Bash", "parameters": BASH["input_schema"]}}]))
    assert any("streaming /v1/chat/completions" in line and "tool call Bash recovered" in line
               for line in proxy.log_lines())
