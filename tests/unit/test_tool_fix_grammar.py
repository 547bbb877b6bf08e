"""The tool-fix callback follows Harmony's grammar: every case of issue 14, on every path.

Each case is a reply built from openai-harmony renderings (special tokens kept, or stripped as by
``skip_special_tokens``), checked the same way through the four paths a reply can take: Anthropic
non-streaming and streaming (/v1/messages), OpenAI non-streaming and streaming
(/v1/chat/completions); streams are cut one token per delta (as vLLM sends) and at seeded random
places (inside special tokens and marker words). A reply that is not a leak comes out byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel
from test_tool_fix_support import (
    CLAUDE_CODE_TOOLS,
    Function,
    accumulate,
    accumulate_openai,
    analysis,
    anthropic_stream,
    call,
    completion,
    final,
    harmony_encoding,
    load_callback,
    openai_stream,
    preamble,
    random_pieces,
    run_chunks,
    run_stream,
    stripped,
    token_pieces,
)

fix = load_callback()
_enc = pytest.fixture(scope="module", name="enc")(harmony_encoding)

CHANNEL_WORD_TOOLS = ["final_report", "analysis_run", "mcp__db__finalize"]
OFFERED = [*CLAUDE_CODE_TOOLS, *CHANNEL_WORD_TOOLS]
SPECIAL_TOKENS = "<|start|><|channel|><|constrain|><|message|><|call|><|end|><|return|>"
QUOTED_CALL = ('<|start|>assistant<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>'
               '{"command":"ls"}<|call|>')
TOKEN_REGEX = r"<\|(start|channel|constrain|message|call|end|return)\|>"


def channel_first(name: str, arguments: dict[str, Any]) -> str:
    """A call as oss-harmony (vLLM 0.33) renders it: the recipient after the channel."""
    return (f"<|start|>assistant<|channel|>commentary to=functions.{name} <|constrain|>json"
            f"<|message|>{json.dumps(arguments)}<|call|>")


def without_tokens(text: str) -> str:
    return re.sub(r"<\|[a-z]+\|>", "", text).removeprefix("assistant")


@dataclass
class Case:
    """A reply (content and reasoning) and what the client must get from it."""

    content: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    text: str | None = None  # the visible text; None: the content itself (not a leak)
    reasoning: str = ""
    offered: list[str] = field(default_factory=lambda: OFFERED)


def leak_cases(enc) -> dict[str, Case]:
    bash = {"command": "ls"}
    every_token = {"command": f"echo '{SPECIAL_TOKENS} to=functions.Edit assistantcommentary'"}
    write_quoting = {"file_path": "/notes.md", "content": f"Example:\n{QUOTED_CALL}\nand the stripped form "
                     f"{without_tokens(QUOTED_CALL)}\n"}
    edit_regex = {"file_path": "/fix.py", "old_string": "TOKENS = None",
                  "new_string": f'TOKENS = re.compile(r"{TOKEN_REGEX}")  # to=functions.X'}
    cases = {
        "marked": Case(completion(enc, analysis("Need to list."), call("Bash", bash)), [("Bash", bash)], ""),
        "marked-channel-first": Case(completion(enc, analysis("List.")) + channel_first("Bash", bash),
                                     [("Bash", bash)], ""),
        "preamble-call-final": Case(
            completion(enc, analysis("Plan."), preamble("I'll run two commands."), call("Bash", bash),
                       call("Bash", {"command": "pwd"}, constrain=False), final("Done.")),
            [("Bash", bash), ("Bash", {"command": "pwd"})], "I'll run two commands.Done."),
        "stripped": Case(stripped(enc, analysis("Need to edit."), call("Edit", {"file_path": "/a",
                                                                               "old_string": "x",
                                                                               "new_string": "y"})),
                         [("Edit", {"file_path": "/a", "old_string": "x", "new_string": "y"})], ""),
        "args-every-token": Case(completion(enc, analysis("Echo."), call("Bash", every_token)),
                                 [("Bash", every_token)], ""),
        "args-every-token-channel-first": Case(channel_first("Bash", every_token),
                                               [("Bash", every_token)], ""),
        "write-quotes-a-call": Case(completion(enc, analysis("Write notes."), call("Write", write_quoting)),
                                    [("Write", write_quoting)], ""),
        "edit-with-token-regex": Case(completion(enc, call("Edit", edit_regex)), [("Edit", edit_regex)], ""),
        "reasoning-only-call": Case("", [("Bash", bash)], "", reasoning=completion(
            enc, analysis("Need to list the files."), call("Bash", bash))),
        "container-unoffered": Case(
            completion(enc, analysis("Run it.")) + "<|start|>assistant<|channel|>analysis to=container.exec "
            'code<|message|>{"cmd": ["ls"]}<|call|>', [], 'to=container.exec {"cmd": ["ls"]}'),
        "container-offered": Case(
            completion(enc, analysis("Run it.")) + "<|start|>assistant<|channel|>analysis to=container.exec "
            'code<|message|>{"cmd": ["ls"]}<|call|>', [("exec", {"cmd": ["ls"]})], "",
            offered=[*CLAUDE_CODE_TOOLS, "exec"]),
        "text-before-leak": Case("Let me look.\n" + completion(enc, analysis("Read it."),
                                                               call("Read", {"file_path": "/a"})),
                                 [("Read", {"file_path": "/a"})], "Let me look.\n"),
    }
    for name in CHANNEL_WORD_TOOLS:
        arguments = {"id": 7}
        marked = completion(enc, analysis("Report."), call(name, arguments))
        oss = completion(enc, analysis("Report.")) + channel_first(name, arguments)
        for order, text in (("recipient-first", marked), ("channel-first", oss)):
            cases[f"{name}-{order}"] = Case(text, [(name, arguments)], "")
            cases[f"{name}-{order}-stripped"] = Case(without_tokens(text), [(name, arguments)], "")
            glued = without_tokens(text).replace(" json", "json")
            cases[f"{name}-{order}-stripped-glued"] = Case(glued, [(name, arguments)], "")
    return cases


def clean_cases(enc) -> dict[str, Case]:
    rendered = completion(enc, analysis("Plan."), call("Bash", {"command": "ls"}))
    return {
        "fenced-call": Case(f"The format:\n```\n{QUOTED_CALL}\n```\nThat is what the model sends."),
        "fenced-transcript": Case(f"~~~text\n<|start|>assistant{rendered}\n~~~\n"),
        "fenced-stripped": Case(f"Stripped:\n```\n{without_tokens(QUOTED_CALL)}\n```"),
        "backticks-call": Case(f"It wrote `{QUOTED_CALL}` instead of calling."),
        "backticks-stripped": Case(f"A stripped call reads ``{without_tokens(QUOTED_CALL)}`` in text."),
        "token-in-backticks": Case("Your config has `<|constrain|>json` in the template; remove it."),
        "tokens-in-prose": Case("The parser stops at <|call|> and <|end|>, then expects <|start|> again."),
        "recipient-in-prose": Case("Recipients look like to=functions.Bash and to=container.exec here."),
        "channel-words": Case("final answer: the analysis shows the assistant commentary was right."),
        "opens-with-channel-word": Case("analysis of the logs: nothing unusual. assistant to the manager."),
        "regex-for-tokens": Case(f'Use `re.compile(r"{TOKEN_REGEX}")` and look for "to=functions.".'),
    }


def case(enc, name: str) -> Case:
    return {**leak_cases(enc), **clean_cases(enc)}[name]


LEAKS = ["marked", "marked-channel-first", "preamble-call-final", "stripped", "args-every-token",
         "args-every-token-channel-first", "write-quotes-a-call", "edit-with-token-regex",
         "reasoning-only-call", "container-unoffered", "container-offered", "text-before-leak",
         *(f"{name}-{order}{form}" for name in CHANNEL_WORD_TOOLS
           for order in ("recipient-first", "channel-first")
           for form in ("", "-stripped", "-stripped-glued"))]
CLEAN = ["fenced-call", "fenced-transcript", "fenced-stripped", "backticks-call", "backticks-stripped",
         "token-in-backticks", "tokens-in-prose", "recipient-in-prose", "channel-words",
         "opens-with-channel-word", "regex-for-tokens"]
CUTS = ["whole", "tokens", "random-1", "random-2", "random-3"]


def cutter(enc, cut: str):
    if cut == "whole":
        return lambda text: [text] if text else []
    if cut == "tokens":
        return token_pieces(enc)
    return random_pieces(int(cut.removeprefix("random-")))


# -- what each path gives the client -------------------------------------------------------------------

def anthropic_message(reasoning: str, content: str) -> dict[str, Any]:
    blocks = [{"type": "thinking", "thinking": reasoning, "signature": None}] if reasoning else []
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "gpt-oss",
            "content": [*blocks, {"type": "text", "text": content}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}


def anthropic_outcome(message: dict[str, Any]) -> tuple[list[tuple[str, Any]], str, str]:
    calls = [(block["name"], block["input"]) for block in message["content"] if block["type"] == "tool_use"]
    text = "".join(block["text"] for block in message["content"] if block["type"] == "text")
    return calls, text, message["stop_reason"]


class ToolCall(BaseModel):
    id: str
    type: str = "function"
    function: Function


class ChatMessage(BaseModel):
    """What the repair relies on in LiteLLM's Message: attributes, and a constructor typing tool_calls."""

    role: str = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(BaseModel):
    message: ChatMessage
    finish_reason: str | None = "stop"


class ChatResponse(BaseModel):
    choices: list[Choice]


def through_every_path(enc, reply: Case, cut: str) -> dict[str, tuple[list[tuple[str, Any]], str, str]]:
    """What the client gets on each path: (calls, visible text, stop reason as Anthropic names it)."""
    pieces = cutter(enc, cut)
    outcomes = {}
    message = anthropic_message(reply.reasoning, reply.content)
    fix.repair_anthropic_message(message, reply.offered)
    outcomes["anthropic"] = anthropic_outcome(message)
    blocks = anthropic_message(reply.reasoning, reply.content)["content"]
    outcomes["anthropic-stream"] = anthropic_outcome(
        accumulate(run_stream(fix, anthropic_stream(blocks, cut=pieces), reply.offered)))
    response = ChatResponse(choices=[Choice(message=ChatMessage(content=reply.content,
                                                                reasoning_content=reply.reasoning or None))])
    fix.repair_openai_response(response, reply.offered)
    chat = response.choices[0]
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in chat.message.tool_calls or []]
    outcomes["openai"] = (calls, chat.message.content or "", _as_stop_reason(chat.finish_reason))
    streamed = accumulate_openai(run_chunks(fix, openai_stream(reply.content, reply.reasoning, pieces),
                                            reply.offered))
    outcomes["openai-stream"] = (streamed["tool_calls"], streamed["content"],
                                 _as_stop_reason(streamed["finish_reason"]))
    return outcomes


def _as_stop_reason(finish_reason: str | None) -> str:
    return {"tool_calls": "tool_use", "stop": "end_turn"}.get(finish_reason or "", str(finish_reason))


# -- the cases --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("name", LEAKS)
def test_every_leak_is_repaired_the_same_on_every_path(enc, name, cut):
    reply = case(enc, name)
    expected = (reply.calls, reply.text, "tool_use" if reply.calls else "end_turn")
    for path, outcome in through_every_path(enc, reply, cut).items():
        assert outcome == expected, path


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("name", CLEAN)
def test_quoted_harmony_is_text_byte_for_byte_on_every_path(enc, name, cut):
    reply = case(enc, name)
    for path, outcome in through_every_path(enc, reply, cut).items():
        assert outcome == ([], reply.content, "end_turn"), path


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("name", CLEAN)
def test_a_clean_anthropic_stream_is_unchanged_event_for_event(enc, name, cut):
    reply = case(enc, name)
    upstream = anthropic_stream([{"type": "text", "text": reply.content}], cut=cutter(enc, cut))
    assert run_stream(fix, upstream, OFFERED) == upstream


def test_a_clean_non_streaming_reply_is_left_untouched(enc):
    for name in CLEAN:
        message = anthropic_message("We need to quote `<|call|>`.", case(enc, name).content)
        before = json.loads(json.dumps(message))
        assert not fix.repair_anthropic_message(message, OFFERED)
        assert message == before


def test_leaked_analysis_never_reaches_the_client(enc):
    for name in LEAKS:
        reply = case(enc, name)
        for path, (_, text, _) in through_every_path(enc, reply, "random-1").items():
            assert "Need to" not in text and "Report." not in text and "Run it." not in text, (name, path)


def test_reasoning_calls_are_not_added_when_the_reply_has_its_own(enc):
    reasoning = completion(enc, analysis("Maybe pwd."), call("Bash", {"command": "pwd"}))
    content = completion(enc, call("Bash", {"command": "ls"}))
    message = anthropic_message(reasoning, content)
    fix.repair_anthropic_message(message, OFFERED)
    assert anthropic_outcome(message)[0] == [("Bash", {"command": "ls"})]
    assert message["content"][0]["thinking"] == "Maybe pwd."


def test_a_stream_sends_a_call_as_soon_as_its_json_ends(enc):
    """Held back: only a possible marker tail; a complete call goes out before the reply ends."""
    content = completion(enc, call("Bash", {"command": "ls"})) + " and some words after it"
    upstream = anthropic_stream([{"type": "text", "text": content}], cut=token_pieces(enc))
    repair = fix.StreamRepair(OFFERED)
    sent_before_stop = [out for item in upstream[:-3] for event in fix.parse_sse(item)
                        for out in repair.feed(event)]
    assert any(b'"tool_use"' in out for out in sent_before_stop)


def test_one_log_line_per_repaired_chat_completions_stream(enc, caplog):
    content = completion(enc, analysis("List."), call("Bash", {"command": "ls"}))
    with caplog.at_level("INFO", logger="litellm_tool_fix"):
        run_chunks(fix, openai_stream(content), OFFERED)
        run_chunks(fix, openai_stream("clean reply"), OFFERED)
    (line,) = [record.getMessage() for record in caplog.records if record.name == "litellm_tool_fix"]
    assert line.startswith("[OSSToolCallFix] streaming /v1/chat/completions: ")
    assert "tool call Bash recovered" in line and "List." not in line


def test_scanner_alone_agrees_fed_whole_or_character_by_character(enc):
    for name in [*LEAKS, *CLEAN]:
        reply = case(enc, name)
        whole = fix.scan_harmony(reply.content)[0]
        scanner = fix.HarmonyScanner()
        parts = [part for char in reply.content for part in scanner.feed(char)] + scanner.finish()
        joined: list[Any] = []
        for part in parts:
            if isinstance(part, str) and joined and isinstance(joined[-1], str):
                joined[-1] += part
            else:
                joined.append(part)
        assert joined == whole, name


def test_hook_runs_without_an_event_loop_of_its_own(enc):
    chunks = openai_stream(completion(enc, call("Bash", {"command": "ls"})))
    out = asyncio.run(_collect(fix.repair_stream(_aiter(chunks), OFFERED)))
    assert accumulate_openai(out)["tool_calls"] == [("Bash", {"command": "ls"})]


async def _aiter(items):
    for item in items:
        yield item


async def _collect(stream):
    return [item async for item in stream]
