"""How much latency the tool-fix callback adds to a reply, in process (not a test).

For clean and leaked replies of about 1 KB and 50 KB, over many iterations (medians):

- non-stream: ``async_post_call_success_hook`` on an Anthropic Messages dict, per reply;
- per event: what each streamed SSE event waits in the streaming hook (LiteLLM sends one event
  per item; text comes in 4-character deltas, about a token each, as from vLLM);
- at stop: upstream ``message_stop`` to the last repaired event, the wait at a reply's end (a clean
  reply has sent everything by then; a leaked one is parsed and sent then);
- stream CPU: the whole reply through ``async_post_call_streaming_iterator_hook`` minus the same
  items through a bare async generator: CPU spread over the stream, not a wait.

Goals: under 1 ms added per clean reply, under 5 ms per leaked one.

    .venv/bin/python benchmarks/tool_fix_latency.py [--iterations N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import importlib.util
import json
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

CALLBACK_FILE = Path(__file__).resolve().parents[1] / "files" / "litellm_tool_fix.py"
TOOLS = ["Agent", "Bash", "Edit", "Read", "Write", "ToolSearch", "DeferredToolPlaceholder"]
DELTA_CHARS = 4  # about one token


def load_callback() -> ModuleType:
    spec = importlib.util.spec_from_file_location("litellm_tool_fix", CALLBACK_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    logging.getLogger("litellm_tool_fix").setLevel(logging.WARNING)  # one line per repair would dominate
    return module


def clean_text(size: int) -> str:
    sentence = "The function reads the configuration, validates each key and returns a summary. "
    return (sentence * (size // len(sentence) + 1))[:size]


def leaked_text(size: int) -> str:
    """Harmony with special tokens: analysis, then an Edit call whose new_string makes up the size."""
    head = "<|channel|>analysis<|message|>The user wants the summary rewritten.<|end|>"
    call = ("<|start|>assistant<|channel|>commentary to=functions.Edit <|constrain|>json<|message|>"
            "{}<|call|>")
    arguments = {"file_path": "/work/app.py", "old_string": "x = 1", "new_string": ""}
    arguments["new_string"] = clean_text(max(0, size - len(head) - len(call) - len(json.dumps(arguments))))
    return head + call.replace("{}", json.dumps(arguments))


def anthropic_message(text: str) -> dict[str, Any]:
    return {"id": "msg_bench", "type": "message", "role": "assistant", "model": "gpt-oss",
            "content": [{"type": "thinking", "thinking": "Short plan.", "signature": None},
                        {"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1}}


def sse_items(text: str) -> list[bytes]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

    items = [event("message_start", {"message": {**anthropic_message(""), "content": []}}),
             event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})]
    items += [event("content_block_delta", {"index": 0, "delta": {"type": "text_delta",
                                                                  "text": text[at:at + DELTA_CHARS]}})
              for at in range(0, len(text), DELTA_CHARS)]
    items += [event("content_block_stop", {"index": 0}),
              event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": 10}}),
              event("message_stop", {})]
    return items


async def _replay(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def _drain(stream: AsyncIterator[Any]) -> None:
    async for _ in stream:
        pass


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_non_streaming(fix: ModuleType, text: str, iterations: int) -> float:
    request = {"tools": [{"name": name} for name in TOOLS]}
    samples = []
    for _ in range(iterations):
        message = copy.deepcopy(anthropic_message(text))
        started = time.perf_counter()
        _run_hook(fix, request, message)
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


def _run_hook(fix: ModuleType, request: dict[str, Any], message: dict[str, Any]) -> None:
    coroutine = fix.litellm_tool_fix.async_post_call_success_hook(request, None, message)
    with contextlib.suppress(StopIteration):
        coroutine.send(None)  # the hook never awaits: run it without an event loop's overhead


def time_streaming(fix: ModuleType, items: list[bytes], iterations: int) -> tuple[float, float]:
    """Median milliseconds per reply through the hook and through a bare generator."""
    request = {"tools": [{"name": name} for name in TOOLS]}
    loop = asyncio.new_event_loop()

    def hooked() -> AsyncIterator[Any]:
        return fix.litellm_tool_fix.async_post_call_streaming_iterator_hook(None, _replay(items), request)

    try:
        return (_median_run(loop, hooked, iterations), _median_run(loop, lambda: _replay(items), iterations))
    finally:
        loop.close()


def _median_run(loop: asyncio.AbstractEventLoop, make: Callable[[], AsyncIterator[Any]],
                iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        loop.run_until_complete(_drain(make()))
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


def time_events(fix: ModuleType, items: list[bytes], iterations: int) -> tuple[float, float]:
    """Median milliseconds one streamed event waits, and the last event (message_stop) waits."""
    per_event, at_stop = [], []
    for _ in range(iterations):
        repair = fix.StreamRepair(TOOLS)
        for number, item in enumerate(items):
            started = time.perf_counter()
            for event in fix.parse_sse(item):
                repair.feed(event)
            elapsed = time.perf_counter() - started
            (at_stop if number == len(items) - 1 else per_event).append(elapsed)
    return median_ms(per_event), median_ms(at_stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    fix = load_callback()
    print(f"{'reply':<14}{'non-stream':>12}{'per event':>12}{'at stop':>11}{'stream CPU':>13}"
          f"{'events':>8}")
    for size_name, size in (("1 KB", 1024), ("50 KB", 50 * 1024)):
        for kind, make_text in (("clean", clean_text), ("leaked", leaked_text)):
            text = make_text(size)
            items = sse_items(text)
            iterations = max(5, args.iterations // (10 if size > 10_000 else 1))
            non_streaming = time_non_streaming(fix, text, iterations)
            per_event, at_stop = time_events(fix, items, iterations)
            hooked, bare = time_streaming(fix, items, iterations)
            print(f"{kind + ' ' + size_name:<14}{non_streaming:>10.3f}ms{per_event * 1000:>10.2f}us"
                  f"{at_stop:>9.3f}ms{max(0.0, hooked - bare):>11.2f}ms{len(items):>8}")


if __name__ == "__main__":
    main()
