"""Helpers for the tool-fix tests (no tests in here): load the callback, render Harmony, build and
replay Anthropic SSE and OpenAI chunk streams.

openai-harmony downloads its vocabulary (o200k_base.tiktoken) on first use; offline it reads it from
TIKTOKEN_RS_CACHE_DIR under the file name sha1(url). LiteLLM ships that very file, so the tests take
it from the integration tests' LiteLLM venv (tests/integration/litellm-venv.sh) or an importable litellm.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import shutil
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from openai_harmony import HarmonyEncodingName, Message, Role, load_harmony_encoding
from pydantic import BaseModel

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


VOCAB_CACHE_NAME = "fb374d419588a4632f3f557e76b4b70aebbca790"  # sha1 of the o200k_base.tiktoken URL
FIRST_SPECIAL_TOKEN = 199998


def _vocab_file() -> Path | None:
    candidates = list(REPO.glob(".sparkdeploy/venvs/litellm/lib/python*/site-packages/litellm/"
                                f"litellm_core_utils/tokenizers/{VOCAB_CACHE_NAME}"))
    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "litellm_core_utils" / "tokenizers" / VOCAB_CACHE_NAME)
    return next((path for path in candidates if path.is_file()), None)


def harmony_encoding(tmp_path_factory):
    """The gpt-oss Harmony encoding, loaded offline from a copy of LiteLLM's vocabulary file.

    A test module makes it its ``enc`` fixture: ``pytest.fixture(scope="module", name="enc")(...)``.
    """
    vocab = _vocab_file()
    if vocab is None:
        pytest.fail("no o200k_base vocabulary for openai-harmony: run tests/integration/litellm-venv.sh")
    cache = tmp_path_factory.mktemp("tiktoken-rs-cache")
    shutil.copy(vocab, cache / VOCAB_CACHE_NAME)  # harmony deletes a cached file whose hash is wrong
    previous = os.environ.get("TIKTOKEN_RS_CACHE_DIR")
    os.environ["TIKTOKEN_RS_CACHE_DIR"] = str(cache)
    try:
        yield load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    finally:
        if previous is None:
            os.environ.pop("TIKTOKEN_RS_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_RS_CACHE_DIR"] = previous


def analysis(text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("analysis")


def final(text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("final")


def preamble(text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("commentary")


def call(name: str, arguments: dict[str, Any], constrain: bool = True) -> Message:
    message = (Message.from_role_and_content(Role.ASSISTANT, json.dumps(arguments))
               .with_channel("commentary").with_recipient(f"functions.{name}"))
    return message.with_content_type("<|constrain|>json") if constrain else message


def completion(enc, *messages: Message) -> str:
    """What the model generated after the prompt's trailing ``<|start|>assistant``, as vLLM decodes it."""
    text = "".join(enc.decode(enc.render(message)) for message in messages)
    return text.removeprefix("<|start|>assistant")


def stripped(enc, *messages: Message) -> str:
    """The same generation decoded with skip_special_tokens=True."""
    tokens = [token for message in messages for token in enc.render(message)]
    text = enc.decode([token for token in tokens if token < FIRST_SPECIAL_TOKEN])
    return text.removeprefix("assistant")


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


Cut = Callable[[str], list[str]]


def fixed_pieces(size: int) -> Cut:
    return lambda text: [text[at:at + size] for at in range(0, len(text), size)]


def random_pieces(seed: int, longest: int = 12) -> Cut:
    """Cuts anywhere, inside special tokens and marker words too, reproducibly."""
    def cut(text: str) -> list[str]:
        rng, pieces, at = random.Random(f"{seed}:{text}"), [], 0
        while at < len(text):
            size = rng.randint(1, longest)
            pieces.append(text[at:at + size])
            at += size
        return pieces
    return cut


def token_pieces(enc) -> Cut:
    """One piece per token, as vLLM streams: special tokens arrive whole."""
    return lambda text: [enc.decode([token]) for token in enc.encode(text, allowed_special="all")]


def anthropic_stream(blocks: Sequence[dict[str, Any]], stop_reason: str = "end_turn",
                     piece: int = 7, cut: Cut | None = None) -> list[bytes]:
    """An Anthropic SSE reply as LiteLLM 1.106.2 sends it: one event per item, text in small deltas."""
    cut = cut or fixed_pieces(piece)
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
        for body_piece in cut(body) if kind != "tool_use" else fixed_pieces(piece)(body):
            events.append(sse("content_block_delta", {"index": index, "delta": {
                "type": delta_type, key: body_piece}}))
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


# -- OpenAI chat-completions chunks, shaped as LiteLLM's ModelResponseStream ------------------------------

class Function(BaseModel):
    name: str | None = None
    arguments: str = ""


class ToolCallDelta(BaseModel):
    index: int
    id: str | None = None
    type: str | None = None
    function: Function


class Delta(BaseModel):
    """What the repair relies on in LiteLLM's Delta: attributes, and a constructor typing tool_calls."""

    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class StreamingChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class Chunk(BaseModel):
    id: str = "chatcmpl-test"
    object: str = "chat.completion.chunk"
    model: str = "gpt-oss"
    choices: list[StreamingChoice]
    usage: dict[str, int] | None = None


def openai_stream(content: str, reasoning: str = "", cut: Cut | None = None,
                  finish_reason: str = "stop") -> list[Chunk]:
    """A chat-completions stream as the proxy hands it to the hook: reasoning deltas, then content."""
    cut = cut or fixed_pieces(7)
    chunks = [Chunk(choices=[StreamingChoice(delta=Delta(role="assistant", content=""))])]
    chunks += [_chunk(Delta(reasoning_content=piece)) for piece in cut(reasoning)]
    chunks += [_chunk(Delta(content=piece)) for piece in cut(content)]
    chunks.append(Chunk(choices=[StreamingChoice(delta=Delta(), finish_reason=finish_reason)]))
    chunks.append(Chunk(choices=[], usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}))
    return chunks


def _chunk(delta: Delta) -> Chunk:
    return Chunk(choices=[StreamingChoice(delta=delta)])


def accumulate_openai(chunks: Iterable[Chunk]) -> dict[str, Any]:
    """The message an OpenAI client builds from chunks (the SDK's accumulation, for one choice)."""
    content, reasoning, finish_reason = "", "", None
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            reasoning += delta.reasoning_content or ""
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = entry["id"] or call.id
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments
            finish_reason = choice.finish_reason or finish_reason
    assert list(calls) == list(range(len(calls))), "tool call indexes must be consecutive"
    return {"content": content, "reasoning": reasoning, "finish_reason": finish_reason,
            "tool_calls": [(call["name"], json.loads(call["arguments"])) for call in calls.values()],
            "ids": [call["id"] for call in calls.values()]}


def run_chunks(module: ModuleType, chunks: Iterable[Chunk], offered: Sequence[str]) -> list[Any]:
    """Everything the streaming hook yields for chat-completions chunks (OpenAI-shaped tools)."""
    async def collect() -> list[Any]:
        request = {"tools": [{"type": "function", "function": {"name": name}} for name in offered]}
        hook = module.litellm_tool_fix.async_post_call_streaming_iterator_hook(None, _aiter(chunks), request)
        return [item async for item in hook]
    return asyncio.run(collect())
