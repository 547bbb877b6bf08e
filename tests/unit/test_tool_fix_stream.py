"""The tool-fix callback's streaming repair: Anthropic SSE events in, the events a client should get out."""

from __future__ import annotations

import json
import logging

import pytest
from test_tool_fix_support import (
    CLAUDE_CODE_TOOLS,
    accumulate,
    anthropic_stream,
    load_callback,
    run_stream,
    sse,
)

fix = load_callback()

EDIT_ARGS = {"file_path": "/work/app.py", "old_string": "x = 1", "new_string": "x = 2"}
LEAKED_EDIT = ("<|channel|>analysis<|message|>Need to edit the file.<|end|>"
               "<|start|>assistant<|channel|>commentary to=functions.Edit <|constrain|>json"
               f"<|message|>{json.dumps(EDIT_ARGS)}<|call|>")
LEAKED_TWO = (LEAKED_EDIT + "<|start|>assistant<|channel|>commentary to=functions.Bash <|constrain|>json"
              '<|message|>{"command": "ls"}<|call|>')
STRIPPED_EDIT = f"analysisNeed to edit.assistantcommentary to=functions.Edit json{json.dumps(EDIT_ARGS)}"
THINKING = {"type": "thinking", "thinking": "The user wants an edit."}


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


def tool_use(name: str, tool_input: dict, block_id: str = "toolu_up") -> dict:
    return {"type": "tool_use", "id": block_id, "name": name, "input": tool_input}


def summary(message: dict) -> list[tuple]:
    return [(block["type"], block.get("name") or block.get("text") or block.get("thinking"),
             block.get("input")) for block in message["content"]]


# -- clean replies pass through event for event ------------------------------------------------------------

@pytest.mark.parametrize("blocks", [
    [text("Hello there, nothing to do.")],
    [THINKING, text("Here is the answer you asked for.")],
    [THINKING, tool_use("Bash", {"command": "ls"})],
    [text("An assistant can say `a < b` and then talk about to=functions without the dot.")],
    [text("finally, an answer that opens with a lowercase channel word")],
    [text("analysis of the logs: nothing to report")],
], ids=["text", "thinking+text", "tool_use", "near-markers", "opens-with-final", "opens-with-analysis"])
@pytest.mark.parametrize("piece", [1, 3, 7, 50])
def test_clean_stream_is_unchanged_event_for_event(blocks, piece):
    stop_reason = "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn"
    upstream = anthropic_stream(blocks, stop_reason, piece=piece)
    assert run_stream(fix, upstream, CLAUDE_CODE_TOOLS) == upstream


def test_clean_text_goes_out_delta_by_delta():
    """A delta is held only while its end could begin a marker ("...assist", "<|"); these never do."""
    upstream = anthropic_stream([text("Hello there, this is a clean reply without any markers.")], piece=5)
    repair = fix.StreamRepair(CLAUDE_CODE_TOOLS)
    sent_per_event = [len(repair.feed(event)) for item in upstream for event in fix.parse_sse(item)]
    assert sent_per_event[0] == 1  # message_start
    assert sent_per_event[1] == 0  # content_block_start waits for the first delta
    assert sent_per_event[2] == 2 and set(sent_per_event[3:]) == {1}


def test_a_possible_marker_start_is_held_then_released_unchanged():
    """Held: a marker word's start where a message may start (after a sentence) and a token's "<"."""
    upstream = anthropic_stream([text("Ask the helper. assist" + "ant about it <")], piece=22)
    repair = fix.StreamRepair(CLAUDE_CODE_TOOLS)
    sent = [repair.feed(event) for item in upstream for event in fix.parse_sse(item)]
    assert [len(batch) for batch in sent[2:4]] == [0, 0]  # "...helper. assist", then "...about it <"
    assert [item for batch in sent for item in batch] == upstream


def test_a_marker_word_inside_a_sentence_is_not_held():
    upstream = anthropic_stream([text("Ask the assist" + "ant about it.")], piece=14)
    repair = fix.StreamRepair(CLAUDE_CODE_TOOLS)
    sent = [repair.feed(event) for item in upstream for event in fix.parse_sse(item)]
    assert [len(batch) for batch in sent[1:4]] == [0, 2, 1]
    assert [item for batch in sent for item in batch] == upstream


def test_items_that_are_not_sse_pass_untouched():
    chunks = [object(), object()]
    assert run_stream(fix, chunks, CLAUDE_CODE_TOOLS) == chunks


def test_str_items_come_out_as_str():
    upstream = [item.decode() for item in anthropic_stream([text(LEAKED_EDIT)])]
    out = run_stream(fix, upstream, CLAUDE_CODE_TOOLS)
    assert all(isinstance(item, str) for item in out)
    assert accumulate(out)["stop_reason"] == "tool_use"


# -- leaks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("piece", [1, 2, 3, 5, 7, 11, 64, 4096])
def test_leaked_call_becomes_tool_use_whatever_the_delta_size(piece):
    out = run_stream(fix, anthropic_stream([text(LEAKED_EDIT)], piece=piece), CLAUDE_CODE_TOOLS)
    message = accumulate(out)
    assert summary(message) == [("tool_use", "Edit", EDIT_ARGS)]
    assert message["stop_reason"] == "tool_use"
    assert not any(b"Need to edit" in item for item in out)


def test_two_leaked_calls_after_thinking_are_numbered_from_the_thinking_block():
    message = accumulate(run_stream(fix, anthropic_stream([THINKING, text(LEAKED_TWO)]), CLAUDE_CODE_TOOLS))
    assert summary(message) == [("thinking", THINKING["thinking"], None), ("tool_use", "Edit", EDIT_ARGS),
                                ("tool_use", "Bash", {"command": "ls"})]
    assert message["content"][1]["id"] != message["content"][2]["id"]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize("piece", [1, 4, 7, 13])
def test_stripped_markers_become_tool_use_without_showing_analysis(piece):
    out = run_stream(fix, anthropic_stream([text(STRIPPED_EDIT)], piece=piece), CLAUDE_CODE_TOOLS)
    message = accumulate(out)
    assert summary(message) == [("tool_use", "Edit", EDIT_ARGS)]
    assert message["stop_reason"] == "tool_use"
    assert not any(b"Need to" in item for item in out)


@pytest.mark.parametrize("piece", [1, 7])
def test_clean_text_before_a_leak_keeps_its_block(piece):
    upstream = anthropic_stream([text("Let me fix that. " + LEAKED_EDIT)], piece=piece)
    message = accumulate(run_stream(fix, upstream, CLAUDE_CODE_TOOLS))
    assert summary(message) == [("text", "Let me fix that. ", None), ("tool_use", "Edit", EDIT_ARGS)]


def test_preamble_and_final_text_of_a_leak_are_kept():
    leak = ("<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>commentary "
            'to=functions.Read <|constrain|>json<|message|>{"file_path": "/a"}<|call|>')
    message = accumulate(run_stream(fix, anthropic_stream([text(leak)]), CLAUDE_CODE_TOOLS))
    assert summary(message) == [("text", "Checking.", None), ("tool_use", "Read", {"file_path": "/a"})]


def test_malformed_arguments_stream_as_text_and_end_the_turn():
    broken = LEAKED_EDIT.replace("}<|call|>", "<|call|>")
    message = accumulate(run_stream(fix, anthropic_stream([text(broken)]), CLAUDE_CODE_TOOLS))
    assert [block["type"] for block in message["content"]] == ["text"]
    assert message["content"][0]["text"].startswith("to=functions.Edit {")
    assert message["stop_reason"] == "end_turn"


def test_unoffered_tool_is_never_emitted():
    leak = LEAKED_EDIT.replace("functions.Edit", "functions.apply_patch")
    message = accumulate(run_stream(fix, anthropic_stream([text(leak)]), CLAUDE_CODE_TOOLS))
    assert [block["type"] for block in message["content"]] == ["text"]
    assert message["stop_reason"] == "end_turn"


def test_multi_edit_leak_becomes_edits():
    edits = [{"old_string": "a", "new_string": "b"}, {"old_string": "c", "new_string": "d"}]
    leak = LEAKED_EDIT.replace("functions.Edit", "functions.MultiEdit").replace(
        json.dumps(EDIT_ARGS), json.dumps({"file_path": "/f", "edits": edits}))
    message = accumulate(run_stream(fix, anthropic_stream([text(leak)]), CLAUDE_CODE_TOOLS))
    assert [(b["name"], b["input"]["old_string"]) for b in message["content"]] == [("Edit", "a"),
                                                                                 ("Edit", "c")]


def test_thinking_tokens_are_removed_and_the_text_after_passes():
    thinking = {"type": "thinking", "thinking": "<|channel|>analysis<|message|>Plan the edit.<|end|>"}
    message = accumulate(run_stream(fix, anthropic_stream([thinking, text("Done.")]), CLAUDE_CODE_TOOLS))
    assert summary(message) == [("thinking", "Plan the edit.", None), ("text", "Done.", None)]


def test_clean_thinking_then_token_in_the_middle_continues_the_same_block():
    thinking = {"type": "thinking", "thinking": "First thought, quite long.<|end|>More."}
    upstream = anthropic_stream([thinking, text("Hi.")], piece=4)
    message = accumulate(run_stream(fix, upstream, CLAUDE_CODE_TOOLS))
    assert summary(message) == [("thinking", "First thought, quite long.\n\nMore.", None),
                                ("text", "Hi.", None)]


# -- tool_use blocks and stop_reason ---------------------------------------------------------------------

def test_clean_tool_use_with_wrong_stop_reason_is_fixed():
    upstream = anthropic_stream([tool_use("Bash", {"command": "ls"})], "end_turn")
    out = run_stream(fix, upstream, CLAUDE_CODE_TOOLS)
    assert accumulate(out)["stop_reason"] == "tool_use"


def test_tool_use_with_invented_name_is_mapped():
    upstream = anthropic_stream([THINKING, tool_use("EditFile", EDIT_ARGS, "toolu_keep")], "tool_use")
    message = accumulate(run_stream(fix, upstream, CLAUDE_CODE_TOOLS))
    assert message["content"][1] == tool_use("Edit", EDIT_ARGS, "toolu_keep")


# -- stream mechanics ------------------------------------------------------------------------------------

def test_ping_during_a_leak_is_forwarded_at_once():
    upstream = anthropic_stream([text(LEAKED_EDIT)])
    upstream.insert(10, sse("ping", {}))
    repair = fix.StreamRepair(CLAUDE_CODE_TOOLS)
    outputs = [repair.feed(event) for item in upstream for event in fix.parse_sse(item)]
    assert outputs[10] == [sse("ping", {})]


def test_stream_cut_before_message_stop_still_gets_its_blocks():
    upstream = anthropic_stream([text(LEAKED_EDIT)])[:-2]
    message = accumulate(run_stream(fix, upstream, CLAUDE_CODE_TOOLS))
    assert summary(message) == [("tool_use", "Edit", EDIT_ARGS)]


def test_several_events_in_one_item_are_handled():
    upstream = anthropic_stream([text(LEAKED_EDIT)])
    joined = [b"".join(upstream[:5]), *upstream[5:]]
    message = accumulate(run_stream(fix, joined, CLAUDE_CODE_TOOLS))
    assert summary(message) == [("tool_use", "Edit", EDIT_ARGS)]


def test_one_log_line_per_repaired_stream_without_content(caplog):
    with caplog.at_level(logging.INFO, logger="litellm_tool_fix"):
        run_stream(fix, anthropic_stream([text(LEAKED_EDIT)]), CLAUDE_CODE_TOOLS)
        run_stream(fix, anthropic_stream([text("clean")]), CLAUDE_CODE_TOOLS)
    lines = [record.getMessage() for record in caplog.records if record.name == "litellm_tool_fix"]
    assert len(lines) == 1
    assert lines[0].startswith("[OSSToolCallFix] streaming /v1/messages: ")
    assert "tool call Edit recovered" in lines[0] and "stop_reason end_turn -> tool_use" in lines[0]
    assert "/work/app.py" not in lines[0] and "Need to edit" not in lines[0]


# -- failures never cost the client its reply ---------------------------------------------------------------

def _boom(*args, **kwargs):
    raise RuntimeError("a bug quoting /secret/content")


def test_a_scanner_bug_sends_the_reply_as_it_came(monkeypatch, caplog):
    monkeypatch.setattr(fix.HarmonyScanner, "feed", _boom)
    upstream = anthropic_stream([THINKING, text(LEAKED_EDIT)])
    with caplog.at_level(logging.INFO, logger="litellm_tool_fix"):
        assert run_stream(fix, upstream, CLAUDE_CODE_TOOLS) == upstream
    (line,) = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert "streaming repair failed (RuntimeError at _boom:" in line and "/secret" not in line


def test_a_mapping_bug_after_a_leak_still_ends_the_stream(monkeypatch):
    monkeypatch.setattr(fix, "_call_blocks", _boom)
    out = run_stream(fix, anthropic_stream([text(LEAKED_EDIT)]), CLAUDE_CODE_TOOLS)
    assert out[-1] == sse("message_stop", {})
