"""The tool-fix callback's Harmony parser and non-streaming repairs, on openai-harmony's transcripts."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from openai_harmony import Role
from test_tool_fix_support import (
    CLAUDE_CODE_TOOLS,
    analysis,
    call,
    completion,
    final,
    harmony_encoding,
    load_callback,
    preamble,
    stripped,
)

fix = load_callback()
_enc = pytest.fixture(scope="module", name="enc")(harmony_encoding)

EDIT_ARGS = {"file_path": "/work/app.py", "old_string": "x = 1", "new_string": "x = 2"}


def calls_of(parts) -> list[tuple[str, dict[str, Any] | None]]:
    return [(part.recipient, fix.parse_arguments(part.arguments)) for part in parts
            if isinstance(part, fix.HarmonyCall)]


def texts_of(parts) -> list[str]:
    return [part for part in parts if isinstance(part, str)]


# -- parser ----------------------------------------------------------------------------------------

def test_rendered_tool_call_parses_to_one_call_and_drops_analysis(enc):
    text = completion(enc, analysis("Need to edit the file."), call("Edit", EDIT_ARGS))
    assert text.startswith("<|channel|>analysis<|message|>")  # what a leak looks like
    parts = fix.parse_harmony(text)
    assert calls_of(parts) == [("functions.Edit", EDIT_ARGS)]
    assert texts_of(parts) == []


def test_parser_agrees_with_openai_harmony_on_rendered_transcripts(enc):
    messages = [analysis("Plan."), preamble("I'll run two commands."), call("Bash", {"command": "ls"}),
                call("Bash", {"command": "pwd"}, constrain=False)]
    text = completion(enc, *messages)
    tokens = enc.encode("<|start|>assistant" + text, allowed_special="all")
    parsed = enc.parse_messages_from_completion_tokens(tokens, None)
    expected_calls = [(m.recipient, json.loads(m.content[0].text)) for m in parsed if m.recipient]
    expected_text = [m.content[0].text for m in parsed if not m.recipient and m.channel != "analysis"]
    parts = fix.parse_harmony(text)
    assert calls_of(parts) == expected_calls == [("functions.Bash", {"command": "ls"}),
                                                 ("functions.Bash", {"command": "pwd"})]
    assert texts_of(parts) == expected_text == ["I'll run two commands."]


def test_recipient_in_channel_position_parses_like_role_position(enc):
    legacy = completion(enc, call("Edit", EDIT_ARGS))
    assert legacy.startswith(" to=functions.Edit<|channel|>commentary")  # openai-harmony 0.0.8's order
    channel_position = ("<|channel|>commentary to=functions.Edit <|constrain|>json<|message|>"
                        f"{json.dumps(EDIT_ARGS)}<|call|>")
    tokens = enc.encode("<|start|>assistant" + channel_position, allowed_special="all")
    (library_message,) = enc.parse_messages_from_completion_tokens(tokens, None)
    assert library_message.recipient == "functions.Edit"
    assert calls_of(fix.parse_harmony(legacy)) == calls_of(fix.parse_harmony(channel_position)) == [
        ("functions.Edit", EDIT_ARGS)]


def test_final_answer_with_return_is_text(enc):
    text = completion(enc, analysis("Easy."), final("The answer is 4.")) + "<|return|>"
    assert fix.parse_harmony(text) == ["The answer is 4."]


def test_preamble_and_final_are_kept_in_order(enc):
    text = completion(enc, preamble("Looking."), call("Read", {"file_path": "/a"}), final("Done."))
    parts = fix.parse_harmony(text)
    assert [type(part).__name__ for part in parts] == ["str", "HarmonyCall", "str"]
    assert texts_of(parts) == ["Looking.", "Done."]


def test_truncated_call_without_stop_token_is_still_a_call(enc):
    text = completion(enc, call("Bash", {"command": "make"})).removesuffix("<|call|>")
    assert calls_of(fix.parse_harmony(text)) == [("functions.Bash", {"command": "make"})]


def test_text_starting_with_start_token_and_plain_text_before_it(enc):
    text = "Sure." + "<|start|>assistant" + completion(enc, call("Bash", {"command": "ls"}))
    parts = fix.parse_harmony(text)
    assert texts_of(parts) == ["Sure."]
    assert calls_of(parts) == [("functions.Bash", {"command": "ls"})]


def test_plain_text_before_a_channel_header_is_text_not_a_recipient(enc):
    text = "Sure.<|channel|>final<|message|>Here it is.<|return|>"
    tokens = enc.encode(text, allowed_special="all")
    (library_message,) = enc.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    assert library_message.recipient == "Sure."  # what the library makes of it
    assert fix.parse_harmony(text) == ["Sure.\n\nHere it is."]


def test_text_after_call_token_is_kept_not_an_error(enc):
    text = completion(enc, call("Bash", {"command": "ls"})) + " trailing words"
    parts = fix.parse_harmony(text)
    assert calls_of(parts) == [("functions.Bash", {"command": "ls"})]
    assert texts_of(parts) == ["trailing words"]


def test_space_after_constrain_token(enc):
    text = completion(enc, call("Bash", {"command": "ls"})).replace("<|constrain|>json", "<|constrain|> json")
    tokens = enc.encode("<|start|>assistant" + text, allowed_special="all")
    with pytest.raises(Exception, match="unexpected tokens remaining in message header"):
        enc.parse_messages_from_completion_tokens(tokens, None)  # the library gives up here
    assert calls_of(fix.parse_harmony(text)) == [("functions.Bash", {"command": "ls"})]


def test_stripped_markers_recover_the_call_and_drop_analysis(enc):
    text = stripped(enc, analysis("Need to edit."), preamble("Editing now."), call("Edit", EDIT_ARGS))
    assert "<|" not in text and "assistantcommentary" in text
    assert fix.might_leak(text)
    parts = fix.parse_harmony(text)
    assert calls_of(parts) == [("functions.Edit", EDIT_ARGS)]
    assert texts_of(parts) == ["Editing now."]


def test_stripped_markers_with_recipient_after_the_channel():
    text = "analysisNeed to edit.assistantcommentary to=functions.Edit json" + json.dumps(EDIT_ARGS)
    assert fix.parse_harmony(text) == [fix.HarmonyCall("functions.Edit", json.dumps(EDIT_ARGS))]


def test_stripped_name_glued_to_json():
    text = "analysisEdit.assistantcommentary to=functions.Editjson" + json.dumps(EDIT_ARGS)
    message = anthropic_message({"type": "text", "text": text})
    fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert [(b["name"], b["input"]) for b in message["content"]] == [("Edit", EDIT_ARGS)]


def test_stripped_final_answer_is_text(enc):
    assert fix.parse_harmony(stripped(enc, analysis("Think."), final("Four."))) == ["Four."]


def test_inline_recipient_fallback_splits_text_and_call():
    parts = fix.parse_harmony('Let me look. to=functions.Read {"file_path": "/a"} Then more.')
    assert texts_of(parts) == ["Let me look. ", "Then more."]
    assert calls_of(parts) == [("functions.Read", {"file_path": "/a"})]


@pytest.mark.parametrize("text", [
    "Plain answer with no Harmony at all.",
    "Use `a <| b` in the grammar; mention to=functions without a dot.",
    "analysis of the results shows nothing unusual.",
])
def test_clean_text_is_not_a_leak(text):
    parts, scanner = fix.scan_harmony(text)
    assert parts == [text] and not scanner.leaked


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"a": 1}', {"a": 1}),
    (' {"a": 1} ', {"a": 1}),
    ("", {}),
    ('{"a": 1}<|call|>', None),  # the scanner hands over the JSON value only
    ('{"a": ', None),
    ("[1, 2]", None),
    ("not json", None),
])
def test_parse_arguments(raw, expected):
    assert fix.parse_arguments(raw) == expected


def test_reasoning_loses_tokens_and_headers():
    text = "Need to edit.<|end|><|start|>assistant<|channel|>analysis<|message|>Still thinking.<|end|>"
    assert fix.scan_harmony(text, reasoning=True)[0] == ["Need to edit.\n\nStill thinking."]


# -- tool names -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "expected"), [
    ("Edit", "Edit"),
    ("functions.Edit", "Edit"),
    ("EditFile", "Edit"),
    ("edit_file", "Edit"),
    ("CreateFile", "Write"),
    ("create_file", "Write"),
    ("write_file", "Write"),
    ("bash", "Bash"),
    ("Editjson", "Edit"),
    ("Edit<|channel|>commentary", "Edit"),
    ("MultiEdit", None),
    ("browser.search", None),
    ("python", None),
])
def test_resolve_tool_name_maps_only_onto_offered_tools(written, expected):
    assert fix.resolve_tool_name(written, CLAUDE_CODE_TOOLS) == expected


def test_alias_is_not_used_when_its_target_is_not_offered():
    assert fix.resolve_tool_name("write_file", ["Bash", "Edit"]) is None


# -- repairing Anthropic messages --------------------------------------------------------------------

def anthropic_message(*blocks: dict[str, Any], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "gpt-oss",
            "content": list(blocks), "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1}}


def test_clean_message_is_unchanged():
    message = anthropic_message({"type": "thinking", "thinking": "hm", "signature": None},
                                {"type": "text", "text": "Hello."})
    before = json.loads(json.dumps(message))
    assert not fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert message == before


def test_leaked_two_calls_become_two_tool_use_blocks(enc):
    text = completion(enc, analysis("Two edits."), call("Edit", EDIT_ARGS), call("Bash", {"command": "ls"}))
    message = anthropic_message({"type": "text", "text": text})
    report = fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert [(b["type"], b.get("name"), b.get("input")) for b in message["content"]] == [
        ("tool_use", "Edit", EDIT_ARGS), ("tool_use", "Bash", {"command": "ls"})]
    assert all(b["id"].startswith("toolu_") for b in message["content"])
    assert len({b["id"] for b in message["content"]}) == 2
    assert message["stop_reason"] == "tool_use"
    assert "tool call Edit recovered" in report.summary()


def test_thinking_tokens_are_removed(enc):
    message = anthropic_message(
        {"type": "thinking", "thinking": "<|channel|>analysis<|message|>Plan.<|end|>", "signature": None},
        {"type": "text", "text": "Hello."})
    fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert message["content"][0]["thinking"] == "Plan."
    assert message["content"][1] == {"type": "text", "text": "Hello."}


def test_multi_edit_becomes_one_edit_per_element(enc):
    edits = [{"old_string": "a", "new_string": "b"},
             {"old_string": "c", "new_string": "d", "replace_all": True}]
    text = completion(enc, call("MultiEdit", {"file_path": "/f", "edits": edits}))
    message = anthropic_message({"type": "text", "text": text})
    fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert [(b["name"], b["input"]) for b in message["content"]] == [
        ("Edit", {"file_path": "/f", "old_string": "a", "new_string": "b"}),
        ("Edit", {"file_path": "/f", "old_string": "c", "new_string": "d", "replace_all": True})]


def test_multi_edit_is_kept_for_a_client_that_offers_it(enc):
    edits = [{"old_string": "a", "new_string": "b"}]
    text = completion(enc, call("MultiEdit", {"file_path": "/f", "edits": edits}))
    message = anthropic_message({"type": "text", "text": text})
    fix.repair_anthropic_message(message, ["Edit", "MultiEdit"])
    assert [(b["name"], b["input"]) for b in message["content"]] == [("MultiEdit", {"file_path": "/f",
                                                                                    "edits": edits})]


def test_unoffered_tool_stays_visible_as_text_and_is_logged(enc, caplog):
    text = completion(enc, call("browser_search", {"query": "x"}))
    message = anthropic_message({"type": "text", "text": text})
    with caplog.at_level(logging.INFO, logger="litellm_tool_fix"):
        report = fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert message["content"] == [{"type": "text", "text": 'to=functions.browser_search {"query": "x"}'}]
    assert message["stop_reason"] == "end_turn"
    assert "unoffered tool 'functions.browser_search'" in report.summary()


def test_malformed_arguments_return_text_not_an_error(enc):
    text = completion(enc, analysis("Edit."), call("Edit", EDIT_ARGS)).replace("}<|call|>", "<|call|>")
    message = anthropic_message({"type": "text", "text": text}, stop_reason="tool_use")
    report = fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert [b["type"] for b in message["content"]] == ["text"]
    assert message["content"][0]["text"].startswith("to=functions.Edit {")
    assert message["stop_reason"] == "end_turn"
    assert "malformed arguments" in report.summary()


def test_clean_tool_use_with_wrong_stop_reason_is_fixed():
    block = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
    message = anthropic_message(block)
    assert fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert message["content"] == [block]
    assert message["stop_reason"] == "tool_use"


def test_clean_tool_use_with_an_invented_name_is_mapped_keeping_its_id():
    message = anthropic_message({"type": "tool_use", "id": "toolu_1", "name": "EditFile", "input": EDIT_ARGS},
                                stop_reason="tool_use")
    fix.repair_anthropic_message(message, CLAUDE_CODE_TOOLS)
    assert message["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "Edit", "input": EDIT_ARGS}]


# -- repairing OpenAI chat completions ------------------------------------------------------------------

class FakeToolCall:
    def __init__(self, call: dict[str, Any]) -> None:
        self.id = call["id"]
        self.type = "function"
        self.function = type("Function", (), dict(call["function"]))()


class FakeMessage:
    """What the repair relies on in LiteLLM's Message: attributes, and a constructor that types tool_calls."""

    def __init__(self, role: str = "assistant", content: str | None = None,
                 tool_calls: list[dict[str, Any]] | None = None,
                 reasoning_content: str | None = None) -> None:
        self.role, self.content, self.reasoning_content = role, content, reasoning_content
        self.tool_calls = [FakeToolCall(call) for call in tool_calls] if tool_calls else None


class FakeChoice:
    def __init__(self, message: FakeMessage, finish_reason: str) -> None:
        self.message, self.finish_reason = message, finish_reason


def test_chat_completion_leak_becomes_tool_calls(enc):
    text = completion(enc, analysis("Run it."), call("Bash", {"command": "ls"}))
    response = type("Response", (), {"choices": [FakeChoice(FakeMessage(content=text), "stop")]})()
    assert fix.repair_openai_response(response, ["Bash"])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (tool_call,) = choice.message.tool_calls
    assert tool_call.function.name == "Bash"
    assert json.loads(tool_call.function.arguments) == {"command": "ls"}


def test_clean_chat_completion_is_unchanged():
    calls = [{"id": "call_1", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}]
    message = FakeMessage(tool_calls=calls, reasoning_content="why")
    response = type("Response", (), {"choices": [FakeChoice(message, "tool_calls")]})()
    assert not fix.repair_openai_response(response, ["Bash"])
    assert response.choices[0].message is message


# -- pre-call --------------------------------------------------------------------------------------

def test_pre_call_fixes_anthropic_tools():
    tools = [{"name": "mcp__x__y", "description": None, "input_schema": {"type": "object"}},
             {"name": "NoDescription", "input_schema": {"type": "object", "properties": {}}},
             {"name": "DeferredToolPlaceholder", "description": "d", "defer_loading": True,
              "input_schema": {"type": "object"}},
             {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]
    data = {"model": "m", "tools": tools}
    out = asyncio.run(fix.litellm_tool_fix.async_pre_call_hook(None, None, data, "anthropic_messages"))
    assert out is data
    assert [tool.get("description") for tool in tools[:3]] == ["", "", "d"]
    assert "defer_loading" not in tools[2]
    assert tools[3] == {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}


def test_pre_call_fixes_openai_tools():
    function = {"name": "Bash", "description": None,
                "parameters": {"type": "object", "properties": {}, "defer_loading": True}}
    report = fix.RepairReport()
    fix.fix_tool_definitions([{"type": "function", "function": function}], report)
    assert function == {"name": "Bash", "description": "", "parameters": {"type": "object", "properties": {}}}
    assert report.summary() == ('null or missing tool description set to ""; '
                                "defer_loading dropped from tool parameters")


def test_pre_call_leaves_good_tools_alone():
    tools = [{"name": "Bash", "description": "Run", "input_schema": {"type": "object", "required": []},
              "cache_control": {"type": "ephemeral"}}]
    before = json.loads(json.dumps(tools))
    report = fix.RepairReport()
    fix.fix_tool_definitions(tools, report)
    assert tools == before and not report


def test_callback_imports_nothing_but_stdlib_and_litellm():
    source = Path(fix.__file__).read_text()
    imports = {line.split()[1].split(".")[0] for line in source.splitlines()
               if line.startswith(("import ", "from ")) and not line.startswith("from __future__")}
    imports |= {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.strip().startswith("from litellm")}
    assert imports <= {"json", "logging", "re", "sys", "uuid", "collections", "dataclasses", "typing",
                       "litellm"}
