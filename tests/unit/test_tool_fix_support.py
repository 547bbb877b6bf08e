"""Helpers for the tool-fix tests (no tests in here): load the callback, build and replay SSE streams."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CALLBACK_FILE = REPO / "files" / "litellm_tool_fix.py"
CLAUDE_CODE_TOOLS = ["Agent", "Bash", "Edit", "Read", "Write", "ToolSearch", "DeferredToolPlaceholder"]


def load_callback() -> ModuleType:
    """The callback from files/, loaded as LiteLLM's get_instance_fn does: by path, outside sys.modules."""
    spec = importlib.util.spec_from_file_location("litellm_tool_fix", CALLBACK_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def anthropic_stream(blocks: Sequence[dict[str, Any]], stop_reason: str = "end_turn",
                     piece: int = 7) -> list[bytes]:
    """An Anthropic SSE reply as LiteLLM 1.106.2 sends it: one event per item, text in small deltas."""
    message = {"id": "msg_test", "type": "message", "role": "assistant", "content": [], "model": "gpt-oss",
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 0}}
    events = [sse("message_start", {"message": message})]
    for index, block in enumerate(blocks):
        kind = block["type"]
        if kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            body, delta_type, key = json.dumps(block["input"]), "input_json_delta", "partial_json"
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            body, delta_type, key = block["thinking"], "thinking_delta", "thinking"
        else:
            start = {"type": "text", "text": ""}
            body, delta_type, key = block["text"], "text_delta", "text"
        events.append(sse("content_block_start", {"index": index, "content_block": start}))
        for at in range(0, len(body), piece):
            events.append(sse("content_block_delta", {"index": index, "delta": {
                "type": delta_type, key: body[at:at + piece]}}))
        events.append(sse("content_block_stop", {"index": index}))
    events.append(sse("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                        "usage": {"output_tokens": 9}}))
    events.append(sse("message_stop", {}))
    return events


def accumulate(items: Iterable[bytes | str]) -> dict[str, Any]:
    """The message a client builds from SSE, checking what the Anthropic SDK relies on.

    The SDK appends a block on every content_block_start and applies deltas to content[index]:
    indexes must be consecutive, deltas must match their block, and blocks must be closed.
    """
    message: dict[str, Any] = {}
    open_blocks: set[int] = set()
    partial_json: dict[int, str] = {}
    for item in items:
        text = item.decode() if isinstance(item, bytes) else item
        for chunk in filter(str.strip, text.split("\n\n")):
            lines = dict(line.split(": ", 1) for line in chunk.split("\n"))
            data = json.loads(lines["data"])
            assert data["type"] == lines["event"]
            _apply(message, data, open_blocks, partial_json)
    assert not open_blocks, f"blocks never closed: {open_blocks}"
    return message


def _apply(message: dict[str, Any], data: dict[str, Any], open_blocks: set[int],
           partial_json: dict[int, str]) -> None:
    kind = data["type"]
    if kind == "message_start":
        message.update(data["message"])
    elif kind == "content_block_start":
        assert data["index"] == len(message["content"]), "block indexes must be consecutive"
        message["content"].append(dict(data["content_block"]))
        open_blocks.add(data["index"])
    elif kind == "content_block_delta":
        assert data["index"] in open_blocks, "delta for a block that is not open"
        block, delta = message["content"][data["index"]], data["delta"]
        if delta["type"] == "text_delta":
            assert block["type"] == "text"
            block["text"] += delta["text"]
        elif delta["type"] == "thinking_delta":
            assert block["type"] == "thinking"
            block["thinking"] += delta["thinking"]
        elif delta["type"] == "input_json_delta":
            assert block["type"] == "tool_use"
            partial_json[data["index"]] = partial_json.get(data["index"], "") + delta["partial_json"]
    elif kind == "content_block_stop":
        open_blocks.remove(data["index"])
        if data["index"] in partial_json:
            message["content"][data["index"]]["input"] = json.loads(partial_json[data["index"]])
    elif kind == "message_delta":
        message.update(data["delta"])


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def run_stream(module: ModuleType, items: Iterable[Any], offered: Sequence[str]) -> list[Any]:
    """Everything the callback's streaming hook yields for the given upstream items."""
    async def collect() -> list[Any]:
        request = {"tools": [{"name": name, "input_schema": {"type": "object"}} for name in offered]}
        hook = module.litellm_tool_fix.async_post_call_streaming_iterator_hook(None, _aiter(items), request)
        return [item async for item in hook]
    return asyncio.run(collect())
