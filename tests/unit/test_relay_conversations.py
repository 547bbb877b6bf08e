"""The relay's record and what each participant is shown (files/sparkrelay, run as on the host)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "files"))

from sparkrelay import conversations as c
from sparkrelay.store import ConversationStore, Corrupt, NotFound

LIMITS = c.Limits(max_message_chars=1000, max_participants=3, max_tokens=2048, default_max_tokens=256)
SERVED = ["gpt-oss-120b", "qwen"]
CONTEXTS = {"gpt-oss-120b": 131072, "qwen": 2048}


def conversation(*participants, caller="Claude"):
    body = {"caller": caller, "participants": list(participants)
            or [{"name": "Ann", "model": "gpt-oss-120b", "system": "Argue for."},
                {"name": "Bob", "model": "qwen", "system": "Argue against."}]}
    return c.new_conversation(body, SERVED, LIMITS, CONTEXTS)


def said(record, speaker, content, **extra):
    record["messages"].append({"index": len(record["messages"]), "speaker": speaker,
                               "content": content, **extra})


def test_each_participant_sees_the_others_as_named_user_turns_and_itself_as_assistant():
    record = conversation()
    said(record, "Claude", "Is tea better than coffee?")
    said(record, "Ann", "Tea.")
    said(record, "Bob", "Coffee.")
    ann = c.participant(record, "Ann")
    messages, trimmed = c.history_for(record, ann, 8192)
    assert trimmed == 0
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("Argue for.\n\nYou are Ann")
    assert "Claude, Bob" in messages[0]["content"]
    assert messages[1:] == [{"role": "user", "content": "[Claude] Is tea better than coffee?"},
                            {"role": "assistant", "content": "Tea."},
                            {"role": "user", "content": "[Bob] Coffee."}]
    bob, _ = c.history_for(record, c.participant(record, "Bob"), 8192)
    # two others in a row reach Bob as one user turn (roles alternate), then Bob's own turn
    assert bob[1:] == [{"role": "user", "content": "[Claude] Is tea better than coffee?\n\n[Ann] Tea."},
                       {"role": "assistant", "content": "Coffee."},
                       {"role": "user", "content": "[relay] Your turn."}]


def test_failed_turns_are_recorded_but_never_shown_to_a_model():
    record = conversation()
    said(record, "Claude", "Hello")
    said(record, "Ann", "", error="gpt-oss-120b did not answer within 60 s")
    messages, _ = c.history_for(record, c.participant(record, "Bob"), 8192)
    assert [m["content"] for m in messages[1:]] == ["[Claude] Hello"]


def test_history_is_trimmed_oldest_first_keeping_the_system_prompt_and_the_newest():
    record = conversation()
    for index in range(40):
        said(record, "Claude" if index % 2 else "Bob", f"message {index} " + "x" * 300)
    ann = c.participant(record, "Ann")
    messages, trimmed = c.history_for(record, ann, 1500)
    assert trimmed > 0
    assert messages[0]["role"] == "system"
    assert messages[-1]["content"].rsplit("\n\n", 1)[-1].startswith("[Claude] message 39 ")
    assert "message 0 " not in messages[1]["content"]
    assert c.estimate_tokens(messages) + ann["max_tokens"] <= 1500
    kept = sum(m["content"].count("message ") for m in messages[1:])
    assert kept + trimmed == 40


def test_a_newest_message_larger_than_the_context_is_a_failed_turn_with_numbers():
    record = conversation()
    said(record, "Claude", "y" * 999)
    with pytest.raises(c.ContextFull, match=r"about \d+ tokens; Ann \(gpt-oss-120b\) has \d+ left"):
        c.history_for(record, c.participant(record, "Ann"), 400)


@pytest.mark.parametrize(("body", "message"), [
    ({"participants": []}, "participants: a non-empty list"),
    ({"participants": [{"name": "A", "model": "llama"}]},
     "'llama' is not served here; served: gpt-oss-120b, qwen"),
    ({"participants": [{"model": "gpt-oss-120b", "max_tokens": 99999}]},
     "max_tokens: a whole number from 1 to 2048"),
    ({"participants": [{"model": "qwen", "max_tokens": 1025}]},
     r"from 1 to 1024 \(half of qwen's context of 2048 tokens, at most 2048\)"),
    ({"participants": [{"model": "qwen", "temperature": 3}]}, "temperature: a number from 0.0 to 2.0"),
    ({"participants": [{"model": "qwen", "colour": "red"}]}, "unknown key 'colour'"),
    ({"participants": [{"model": "qwen", "name": "Claude"}]}, "name 'Claude' is used twice"),
    ({"participants": [{"model": "qwen", "name": "../etc"}]}, "1-100 letters"),
    ({"participants": [{"model": "qwen", "name": "a" * 101}]}, "1-100 letters"),
    ({"participants": [{"model": "qwen"}] * 4}, "4 given, at most 3"),
    ({"participants": [{"model": "qwen"}], "caller": ""}, "caller ''"),
])
def test_bad_conversations_are_refused_saying_what_is_allowed(body, message):
    body.setdefault("caller", "Claude")
    with pytest.raises(c.BadRequest, match=message):
        c.new_conversation(body, SERVED, LIMITS, CONTEXTS)


def test_recipients_and_messages_are_checked():
    record = conversation()
    assert [p["name"] for p in c.recipients(record, None)] == ["Ann", "Bob"]
    assert [p["name"] for p in c.recipients(record, "Bob")] == ["Bob"]
    with pytest.raises(c.BadRequest, match=r"'Eve' is not a participant .*participants: Ann, Bob"):
        c.recipients(record, ["Eve"])
    with pytest.raises(c.BadRequest, match="at most once"):
        c.recipients(record, ["Ann", "Ann"])
    with pytest.raises(c.BadRequest, match="1001 characters, at most 1000"):
        c.message_text("z" * 1001, LIMITS)
    with pytest.raises(c.BadRequest, match="not one the relay gives"):
        c.check_id("../../etc/passwd")


def test_a_fork_keeps_the_messages_before_the_index_and_says_where_it_came_from():
    record = conversation()
    for text in ("one", "two", "refusal", "four"):
        said(record, "Claude", text)
    copy = c.forked(record, 2)
    assert [m["content"] for m in copy["messages"]] == ["one", "two"]
    assert copy["forked_from"] == {"id": record["id"], "at": 2}
    assert copy["id"] != record["id"] and len(record["messages"]) == 4
    with pytest.raises(c.BadRequest, match="from 0 to 4"):
        c.forked(record, 5)


def test_the_store_writes_durably_and_leaves_no_temporary_file(tmp_path):
    store = ConversationStore(tmp_path)
    record = conversation()
    store.create(record)
    said(record, "Claude", "kept")
    store.save(record)
    assert store.load(record["id"])["messages"][0]["content"] == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{record['id']}.json"]
    assert os.stat(tmp_path / f"{record['id']}.json").st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        store.create(record)
    store.delete(record["id"])
    with pytest.raises(NotFound):
        store.load(record["id"])


def test_a_corrupt_file_is_reported_listed_and_left_as_it_is(tmp_path):
    store = ConversationStore(tmp_path)
    good = conversation()
    store.create(good)
    broken = tmp_path / "c-00000000000000aa.json"
    broken.write_text('{"id": "c-00000000000000aa", "messages": [')
    with pytest.raises(Corrupt, match=r"c-00000000000000aa\.json is not valid JSON .* left as it is"):
        store.load("c-00000000000000aa")
    listed = {item["id"]: item for item in store.summaries()}
    assert "not valid JSON" in listed["c-00000000000000aa"]["corrupt"]
    assert listed[good["id"]]["participants"] == ["Ann", "Bob"]
    assert broken.read_text() == '{"id": "c-00000000000000aa", "messages": ['
    other = tmp_path / "c-00000000000000bb.json"
    other.write_text(json.dumps({"id": "c-0000000000000099", "messages": []}))
    with pytest.raises(Corrupt, match="does not hold conversation c-00000000000000bb"):
        store.load("c-00000000000000bb")


def test_a_history_never_starts_with_the_speakers_own_turn():
    """Rounds without an opening: the first speaker's second turn starts with its own reply,
    which chat templates that alternate from the user (Gemma, Mistral) refuse."""
    record = conversation()
    said(record, "Ann", "Tabs.")
    said(record, "Bob", "Spaces.")
    messages, _ = c.history_for(record, c.participant(record, "Ann"), 8192)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "[relay] You opened the conversation."


def test_the_estimate_counts_bytes_so_cjk_text_is_trimmed_in_time():
    chinese = {"role": "user", "content": "中" * 9000}
    assert c.estimate_tokens([chinese]) >= 9000  # about one token per character, never fewer
    assert c.estimate_tokens([{"role": "user", "content": "a" * 9000}]) == 9000 // 3 + 8


def test_a_system_prompt_that_leaves_no_room_for_the_conversation_is_refused():
    with pytest.raises(c.BadRequest, match=r"participants\[0\]\.system: about \d+ tokens with max_tokens"):
        conversation({"name": "Ann", "model": "qwen", "system": "中" * 999, "max_tokens": 1024})
    assert conversation({"name": "Ann", "model": "qwen", "system": "s" * 500})["participants"]


def test_a_file_of_the_wrong_shape_is_corrupt_not_a_crash(tmp_path):
    store = ConversationStore(tmp_path)
    (tmp_path / "c-00000000000000cc.json").write_text(json.dumps(
        {"id": "c-00000000000000cc", "messages": [], "participants": "nobody"}))
    with pytest.raises(Corrupt, match="not a conversation the relay wrote"):
        store.load("c-00000000000000cc")
    assert "corrupt" in store.summaries()[0]
