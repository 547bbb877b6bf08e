"""A conversation's record, and the chat history each participant is given.

A message from someone else reaches a participant as a user turn prefixed with the speaker's
name; its own messages are its assistant turns. Failed turns are kept in the record but never
shown to a model. History that does not fit a model's context is trimmed oldest first, keeping
its system prompt and the newest message, and the reply says how many messages were left out.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ID = re.compile(r"c-[0-9a-f]{16}\Z")
# a model's served name is a fine participant name (openai/gpt-oss-120b)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.:/+-]{0,99}\Z")
NAMES_ALLOWED = "1-100 letters, digits, spaces or ._:/+-, starting with a letter or digit"
SAMPLING = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}
PARTICIPANT_KEYS = {"name", "model", "system", "max_tokens", *SAMPLING}
# UTF-8 bytes per token, counted low so an estimate errs towards trimming
BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 8
# the turns _merged may add (an opening and a "your turn" note)
_FRAMING_TOKENS = 2 * (MESSAGE_OVERHEAD_TOKENS + 16)


class BadRequest(ValueError):
    """Input the relay refuses (a 4xx): the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Limits:
    max_message_chars: int
    max_participants: int
    max_tokens: int
    default_max_tokens: int


class ContextFull(Exception):
    """Even the newest message does not fit the model's context: a failed turn, with the numbers."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_id() -> str:
    return "c-" + secrets.token_hex(8)


def check_id(conversation_id: str) -> str:
    if not isinstance(conversation_id, str) or not ID.match(conversation_id):
        raise BadRequest(f"conversation id {conversation_id!r} is not one the relay gives "
                         "(c- and 16 hex digits)")
    return conversation_id


def new_conversation(body: Mapping[str, Any], served: list[str], limits: Limits,
                     contexts: Mapping[str, int]) -> dict[str, Any]:
    """A conversation from a create request: ``participants``, optional ``title`` and ``caller``;
    ``contexts`` is each served model's context in tokens."""
    known_keys(body, {"participants", "title", "caller"}, "a conversation")
    caller = body.get("caller", "caller")
    if not isinstance(caller, str) or not NAME.match(caller):
        raise BadRequest(f"caller {caller!r}: {NAMES_ALLOWED}")
    raw = body.get("participants")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("participants: a non-empty list of {name, model, system?, max_tokens?, "
                         "temperature?, top_p?}")
    if len(raw) > limits.max_participants:
        raise BadRequest(f"participants: {len(raw)} given, at most {limits.max_participants}")
    participants = [_participant(index, item, served, limits, contexts) for index, item in enumerate(raw)]
    names = [caller] + [participant["name"] for participant in participants]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise BadRequest(f"name {duplicate!r} is used twice (the caller and every participant need "
                         "their own)")
    title = body.get("title", "")
    if not isinstance(title, str) or len(title) > 200:
        raise BadRequest("title: a string of at most 200 characters")
    return {"id": new_id(), "title": title, "caller": caller, "created": now(),
            "participants": participants, "messages": [], "forked_from": None}


def _participant(index: int, item: Any, served: list[str], limits: Limits,
                 contexts: Mapping[str, int]) -> dict[str, Any]:
    where = f"participants[{index}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where}: an object with name and model")
    known_keys(item, PARTICIPANT_KEYS, where)
    model = item.get("model")
    if model not in served:
        raise BadRequest(f"{where}.model: {model!r} is not served here; served: {', '.join(served)}")
    name = item.get("name", model)
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest(f"{where}.name: {name!r}: {NAMES_ALLOWED}")
    system = item.get("system", "")
    if not isinstance(system, str) or len(system) > limits.max_message_chars:
        raise BadRequest(f"{where}.system: a string of at most {limits.max_message_chars} characters")
    # a reply may take at most half the model's context: the rest is for the history
    most = min(limits.max_tokens, contexts[model] // 2)
    max_tokens = item.get("max_tokens", min(limits.default_max_tokens, most))
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= most:
        raise BadRequest(f"{where}.max_tokens: a whole number from 1 to {most} (half of {model}'s "
                         f"context of {contexts[model]} tokens, at most {limits.max_tokens})")
    room = contexts[model] - max_tokens - estimate_tokens([{"content": system}]) - _FRAMING_TOKENS
    if room < contexts[model] // 4:
        raise BadRequest(f"{where}.system: about {estimate_tokens([{'content': system}])} tokens with "
                         f"max_tokens {max_tokens} leave {max(room, 0)} of {model}'s "
                         f"{contexts[model]} for the conversation; at most three quarters of the "
                         "context may go to the system prompt and the reply")
    participant = {"name": name, "model": model, "system": system, "max_tokens": max_tokens}
    for key, (low, high) in SAMPLING.items():
        if key in item:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise BadRequest(f"{where}.{key}: a number from {low} to {high}")
            participant[key] = value
    return participant


def known_keys(body: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"{what}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def message_text(content: Any, limits: Limits) -> str:
    if not isinstance(content, str) or not content.strip():
        raise BadRequest("content: a non-empty string")
    if len(content) > limits.max_message_chars:
        raise BadRequest(f"content: {len(content)} characters, at most {limits.max_message_chars}")
    return content


def participant(conversation: Mapping[str, Any], name: Any) -> dict[str, Any]:
    for candidate in conversation["participants"]:
        if candidate["name"] == name:
            return candidate
    names = ", ".join(candidate["name"] for candidate in conversation["participants"])
    raise BadRequest(f"{name!r} is not a participant of {conversation['id']}; participants: {names}")


def recipients(conversation: Mapping[str, Any], to: Any) -> list[dict[str, Any]]:
    """``to``: one participant's name or a list of them (each answers in turn); none = all."""
    names = [p["name"] for p in conversation["participants"]] if to is None else to
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names:
        raise BadRequest("to: a participant's name or a non-empty list of names")
    if len(set(map(str, names))) != len(names):
        raise BadRequest("to: each participant at most once per message")
    return [participant(conversation, name) for name in names]


def system_prompt(conversation: Mapping[str, Any], speaker: Mapping[str, Any]) -> str:
    """The participant's own system prompt, then who it is talking to and how turns are marked."""
    others = [conversation["caller"]] + [p["name"] for p in conversation["participants"]
                                         if p["name"] != speaker["name"]]
    note = (f"You are {speaker['name']}, in a conversation relayed between "
            f"{', '.join(others)} and you. Each message from another participant starts with "
            "its name in square brackets; answer as yourself, without a name prefix.")
    return f"{speaker['system']}\n\n{note}" if speaker["system"] else note


def history_for(conversation: Mapping[str, Any], speaker: Mapping[str, Any],
                context_tokens: int) -> tuple[list[dict[str, str]], int]:
    """The chat messages ``speaker`` is sent, and how many recorded messages were trimmed."""
    turns = []
    for message in conversation["messages"]:
        if message.get("error"):
            continue
        if message["speaker"] == speaker["name"]:
            turns.append({"role": "assistant", "content": message["content"]})
        else:
            turns.append({"role": "user", "content": f"[{message['speaker']}] {message['content']}"})
    system = {"role": "system", "content": system_prompt(conversation, speaker)}
    budget = context_tokens - speaker["max_tokens"] - estimate_tokens([system]) - _FRAMING_TOKENS
    sizes = [estimate_tokens([turn]) for turn in turns]
    total, trimmed = sum(sizes), 0
    while len(turns) > 1 and total > budget:
        turns.pop(0)
        total -= sizes[trimmed]
        trimmed += 1
    if total > budget:
        raise ContextFull(f"the newest message alone needs about {total} tokens; "
                          f"{speaker['name']} ({speaker['model']}) has {max(budget, 0)} left after "
                          f"its system prompt and max_tokens {speaker['max_tokens']}")
    return [system, *_merged(turns, trimmed)], trimmed


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """Tokens a chat template makes of ``messages``, estimated from UTF-8 bytes (a byte-level
    tokenizer makes at most one token per byte; three per token is English prose, and CJK text
    counts a token per character): errs towards trimming, no tokenizer needed."""
    return sum(len(m["content"].encode()) // BYTES_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS for m in messages)


def _merged(turns: list[dict[str, str]], trimmed: int) -> list[dict[str, str]]:
    """Consecutive turns of one role joined and the history starting and ending with a user turn
    (many chat templates require roles to alternate from the user's; a completion needs the
    user's last)."""
    merged: list[dict[str, str]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1] = {"role": turn["role"], "content": merged[-1]["content"] + "\n\n" + turn["content"]}
        else:
            merged.append(dict(turn))
    if merged and merged[0]["role"] == "assistant":
        opening = (f"[relay] {trimmed} earlier messages are left out." if trimmed
                   else "[relay] You opened the conversation.")
        merged.insert(0, {"role": "user", "content": opening})
    if not merged or merged[-1]["role"] != "user":
        merged.append({"role": "user", "content": "[relay] Your turn."})
    return merged


def forked(conversation: Mapping[str, Any], at: Any) -> dict[str, Any]:
    """A copy holding messages before index ``at`` (drop a refusal and everything after it)."""
    count = len(conversation["messages"])
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= count:
        raise BadRequest(f"at: a message index from 0 to {count}")
    return {**conversation, "id": new_id(), "created": now(),
            "messages": [dict(message) for message in conversation["messages"][:at]],
            "forked_from": {"id": conversation["id"], "at": at}}


def summary(conversation: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": conversation["id"], "title": conversation["title"], "created": conversation["created"],
            "participants": [p["name"] for p in conversation["participants"]],
            "messages": len(conversation["messages"]), "forked_from": conversation.get("forked_from")}
