"""A stand-in for gpt-oss served by vLLM: an OpenAI-compatible server with canned, selectable replies.

It answers like ``vllm serve openai/gpt-oss-120b --tool-call-parser openai --reasoning-parser
openai_gptoss``: clean ``tool_calls`` when tools are offered and the user names one, text otherwise
(after a tool result, a reply quoting it),
with a ``reasoning`` field and a ``system_fingerprint``. A marker in the last user message replays
the failures the proxy's tool-fix callback repairs, as vLLM puts them in ``content``:

    [clean]               the default behaviour above
    [long]                a long answer (a thinking model's), cut at ``max_tokens`` words with
                          ``finish_reason: length`` as vLLM does
    [call:NAME]           a call to the offered tool NAME, whatever else the message names (a
                          client such as Claude Code names many tools in its own text)
    [text]                a text reply even when a tool is named
    [harmony-leak]        one tool call leaked as Harmony text (special tokens kept)
    [harmony-leak-2]      two leaked tool calls
    [harmony-stripped]    one leaked tool call with the special tokens stripped
    [harmony-malformed]   one leaked tool call whose JSON arguments are cut short
    [harmony-multiedit]   a leaked MultiEdit call (a tool Claude Code no longer has)
    [harmony-thinking]    a clean text reply whose reasoning carries leaked Harmony tokens
    [harmony-args-tokens] a leaked call whose arguments hold every special token and to=functions.
    [harmony-channel-word] a token-stripped call, recipient first, to the named tool (final_report...)
    [harmony-reasoning]   a call leaked into the reasoning, no content
    [harmony-container]   a call to the built-in container.exec after leaked analysis
    [harmony-quoted]      a clean text reply that quotes Harmony in a fence, backticks and prose

A request with vLLM's ``ignore_eos`` (a benchmark's fixed-length generation, as llama-benchy's
``--exact-tg`` sends) streams exactly ``max_tokens`` filler tokens, paced like a model: the first
after the prompt at ``--prefill-tokens-per-second``, then ``--decode-tokens-per-second``. Its
numbers mean nothing; they only make a benchmark's plumbing run. "The capital of France?" gets
"Paris." (a benchmark's coherence check).

Faults a watchdog must catch, triggered from outside (``docker exec vllm_node touch …``) by a
file in ``--fault-dir`` (default $STANDIN_FAULT_DIR; the stand-in image sets one): ``wedge``
makes completions hang while /health keeps answering 200 and /metrics shows the requests
running and the generation counter frozen, as a stalled vLLM scheduler does; ``crash`` makes
the server exit 70 within half a second. A new process clears both, as a restarted engine is
healthy again.

Stdlib only (Python >= 3.11): it also runs in the sandbox image as a fake vLLM, started with vLLM's
own command line (``vllm serve MODEL --port 8000 ...``; unknown flags are ignored). Each request
body is logged as one JSON line (``--request-log``, default stderr) so tests can assert on what
the proxy forwarded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

SYSTEM_FINGERPRINT = "fp_standin_vllm"
TEXT_REPLY = "Hello from the stand-in model. Nothing to do."
TOOL_RESULT_REPLY = "The tool answered: "
LONG_REPLY_WORDS = 200
REASONING = "The user wants this done; a tool call is the way."
STREAM_PIECE_CHARS = 7  # small deltas, so Harmony markers straddle chunks as they do from vLLM
FILLER_TOKEN = " token"
DEFAULT_PREFILL_TOKENS_PER_SECOND = 8000.0
DEFAULT_DECODE_TOKENS_PER_SECOND = 400.0

_MODES = ("clean", "text", "harmony-leak-2", "harmony-leak", "harmony-stripped", "harmony-malformed",
          "harmony-multiedit", "harmony-thinking", "harmony-args-tokens", "harmony-channel-word",
          "harmony-reasoning", "harmony-container", "harmony-quoted")
SPECIAL_TOKENS = "<|start|><|channel|><|constrain|><|message|><|call|><|end|><|return|>"
ARGS_WITH_TOKENS = {"command": f"echo '{SPECIAL_TOKENS} to=functions.Edit'"}
QUOTED_HARMONY = (
    "Your template has `<|constrain|>json` in it; the parser stops at <|call|> and recipients read "
    "to=functions.Bash. A call looks like this:\n```\n<|start|>assistant<|channel|>commentary "
    'to=functions.Bash <|constrain|>json<|message|>{"command":"ls"}<|call|>\n```\n'
    'or, stripped, `assistantcommentary to=functions.Bash json{"command":"ls"}`.')
CONTAINER_CALL = {"cmd": ["bash", "-lc", "ls"]}


def reply_mode(body: dict[str, Any]) -> str:
    """The reply mode the last user message asks for, ``clean`` by default."""
    text = _last_user_text(body)
    for mode in _MODES:
        if f"[{mode}]" in text:
            return mode
    return "clean"


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _trailing_user_text(body: dict[str, Any]) -> str:
    """Every user message since the last assistant or tool turn (a client may add its own user
    message after the prompt)."""
    texts = []
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            break
        texts.append(_text_of(message.get("content")))
    return " ".join(reversed(texts))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


_SYSTEM_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


def offered_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's function tools as ``{name, parameters}``."""
    tools = []
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        if function.get("name"):
            tools.append({"name": function["name"], "parameters": function.get("parameters") or {}})
    return tools


def chosen_tools(body: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The offered tools the user names, in order of mention (the first offered one when none is);
    what a client adds in ``<system-reminder>`` blocks (Claude Code lists tools there) is no mention."""
    tools = offered_tools(body)
    text = _SYSTEM_REMINDER.sub("", _last_user_text(body))
    named = sorted((tool for tool in tools if tool["name"] in text), key=lambda t: text.index(t["name"]))
    picked = named or tools[:1]
    return (picked * count)[:count] if picked else []


def example_arguments(tool: dict[str, Any], variant: int = 0, model: str = "") -> dict[str, Any]:
    """Valid arguments for a tool, from its JSON schema's required properties (a ``model``
    argument names the model answering, so a relay tool reaches a model that is served)."""
    schema = tool["parameters"]
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for name in schema.get("required") or list(properties)[:1]:
        arguments[name] = (model if name == "model" and model
                           else _example_value(name, properties.get(name) or {}, variant))
    return arguments


def _example_value(name: str, schema: dict[str, Any], variant: int) -> Any:
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return variant + 1
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {}
    known = {"file_path": f"/tmp/standin-{variant}.txt", "command": f"echo standin {variant}",
             "old_string": "before", "new_string": "after", "content": "written by the stand-in\n"}
    return known.get(name, f"{name}-{variant}")


# -- replies -------------------------------------------------------------------------------------

def build_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The assistant message to send: ``content``, ``reasoning``, ``tool_calls`` and ``finish_reason``."""
    mode = reply_mode(body)
    after_tool = bool(body.get("messages")) and body["messages"][-1].get("role") == "tool"
    tools = offered_tools(body)
    if "capital of france" in _last_user_text(body).lower():
        return _text_reply("Paris.")
    if "[long]" in _last_user_text(body):
        return _long_reply(body.get("max_tokens"))
    asked = _trailing_user_text(body)
    forced = [tool for tool in tools if f"[call:{tool['name']}]" in asked]
    if forced and not after_tool:
        return _tool_call_reply(forced[:1], str(body.get("model") or ""))
    if after_tool:
        return _text_reply(TOOL_RESULT_REPLY + _text_of(body["messages"][-1].get("content"))[:4000])
    if not tools or mode == "text":
        return _text_reply(TEXT_REPLY)
    if mode == "harmony-thinking":
        reply = _text_reply(TEXT_REPLY)
        reply["reasoning"] = "<|channel|>analysis<|message|>" + REASONING + "<|end|>"
        return reply
    if mode == "harmony-quoted":
        return _text_reply(QUOTED_HARMONY)
    if mode == "harmony-reasoning":
        (tool,) = chosen_tools(body, 1)
        reasoning = (f"<|channel|>analysis<|message|>{REASONING}<|end|>"
                     + _harmony_call(tool["name"], json.dumps(example_arguments(tool))))
        return _text_reply("", reasoning=reasoning)
    if mode == "clean":
        if not any(tool["name"] in _SYSTEM_REMINDER.sub("", _last_user_text(body)) for tool in tools):
            return _text_reply(TEXT_REPLY)
        return _tool_call_reply(chosen_tools(body, 1), str(body.get("model") or ""))
    # The analysis is in the leaked text: vLLM's parser gave up before splitting out reasoning.
    return _text_reply(_leaked_content(mode, body), reasoning=None)


def _long_reply(max_tokens: Any) -> dict[str, Any]:
    words = [f"step{index}" for index in range(LONG_REPLY_WORDS)]
    if isinstance(max_tokens, int) and max_tokens < len(words):
        return {**_text_reply(" ".join(words[:max_tokens])), "finish_reason": "length"}
    return _text_reply(" ".join(words))


def _text_reply(content: str, reasoning: str | None = REASONING) -> dict[str, Any]:
    return {"content": content, "reasoning": reasoning, "tool_calls": [], "finish_reason": "stop"}


def _tool_call_reply(tools: list[dict[str, Any]], model: str = "") -> dict[str, Any]:
    calls = [{"id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function",
              "function": {"name": tool["name"],
                           "arguments": json.dumps(example_arguments(tool, model=model))}}
             for tool in tools]
    return {"content": None, "reasoning": REASONING, "tool_calls": calls, "finish_reason": "tool_calls"}


def _leaked_content(mode: str, body: dict[str, Any]) -> str:
    """Harmony text as it reaches ``content`` when vLLM's tool parser gives up on a generation."""
    analysis = f"<|channel|>analysis<|message|>{REASONING}<|end|>"
    if mode == "harmony-stripped":
        (tool,) = chosen_tools(body, 1)
        arguments = json.dumps(example_arguments(tool))
        return f"analysis{REASONING}assistantcommentary to=functions.{tool['name']} json{arguments}"
    if mode == "harmony-args-tokens":
        (tool,) = chosen_tools(body, 1)
        return analysis + _harmony_call(tool["name"], json.dumps(ARGS_WITH_TOKENS))
    if mode == "harmony-channel-word":
        (tool,) = chosen_tools(body, 1)
        arguments = json.dumps(example_arguments(tool))
        return f"analysis{REASONING}assistant to=functions.{tool['name']}commentary json{arguments}"
    if mode == "harmony-container":
        return (analysis + "<|start|>assistant<|channel|>analysis to=container.exec code<|message|>"
                + json.dumps(CONTAINER_CALL) + "<|call|>")
    if mode == "harmony-multiedit":
        edits = [{"old_string": "one", "new_string": "1"}, {"old_string": "two", "new_string": "2"}]
        return analysis + _harmony_call("MultiEdit", json.dumps({"file_path": "/tmp/standin.txt",
                                                                 "edits": edits}))
    count = 2 if mode == "harmony-leak-2" else 1
    calls = [_harmony_call(tool["name"], json.dumps(example_arguments(tool, variant)))
             for variant, tool in enumerate(chosen_tools(body, count))]
    if mode == "harmony-malformed":
        calls = [call.replace("}<|call|>", "<|call|>") for call in calls]
    return analysis + "".join(calls)


def _harmony_call(name: str, arguments: str) -> str:
    return (f"<|start|>assistant<|channel|>commentary to=functions.{name} <|constrain|>json"
            f"<|message|>{arguments}<|call|>")


# -- OpenAI wire format ----------------------------------------------------------------------------

def completion_json(body: dict[str, Any], reply: dict[str, Any], model: str) -> dict[str, Any]:
    """A non-streaming ``chat.completion``."""
    message = {"role": "assistant", "content": reply["content"], "reasoning": reply["reasoning"],
               "reasoning_content": reply["reasoning"], "tool_calls": reply["tool_calls"]}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": reply["finish_reason"], "stop_reason": None}],
        "usage": _usage(body, reply),
    }


def completion_chunks(body: dict[str, Any], reply: dict[str, Any], model: str) -> Iterator[dict[str, Any]]:
    """The same reply as ``chat.completion.chunk`` objects, in small pieces."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model, "system_fingerprint": SYSTEM_FINGERPRINT}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish_reason}]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reply["reasoning"] or ""):
        yield chunk({"reasoning": piece, "reasoning_content": piece})
    for piece in _pieces(reply["content"] or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(reply["tool_calls"]):
        function = call["function"]
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": function["name"], "arguments": ""}}]})
        for piece in _pieces(function["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, reply["finish_reason"])
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": _usage(body, reply)}


def generation_chunks(body: dict[str, Any], model: str, prefill_tokens_per_second: float,
                      decode_tokens_per_second: float) -> Iterator[dict[str, Any]]:
    """A fixed-length generation (``ignore_eos``): ``max_tokens`` tokens, one per chunk, paced;
    with ``token_ids`` when the request asks for them (``return_token_ids``), as vLLM sends them."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model, "system_fingerprint": SYSTEM_FINGERPRINT}
    count = max(1, int(body.get("max_tokens") or 16))
    usage = _usage(body, {"content": "", "tool_calls": []})
    usage.update(completion_tokens=count, total_tokens=usage["prompt_tokens"] + count)
    time.sleep(usage["prompt_tokens"] / prefill_tokens_per_second)
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "logprobs": None, "finish_reason": None}]}
    for index in range(count):
        if index:
            time.sleep(1 / decode_tokens_per_second)
        choice: dict[str, Any] = {"index": 0, "delta": {"content": FILLER_TOKEN}, "logprobs": None,
                                  "finish_reason": "length" if index == count - 1 else None}
        if body.get("return_token_ids"):
            choice["token_ids"] = [4 + index % 26]
        yield {**base, "choices": [choice]}
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": usage}


def _pieces(text: str) -> list[str]:
    return [text[i:i + STREAM_PIECE_CHARS] for i in range(0, len(text), STREAM_PIECE_CHARS)]


def _usage(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, int]:
    prompt = len(json.dumps(body.get("messages") or [])) // 4
    completion = (len(reply["content"] or "") + len(json.dumps(reply["tool_calls"]))) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


# -- HTTP ------------------------------------------------------------------------------------------

class StandinHandler(BaseHTTPRequestHandler):
    """Serves vLLM's OpenAI-compatible endpoints; ``server.served_names`` and ``server.request_log``."""

    protocol_version = "HTTP/1.1"
    server: StandinServer

    def _authorized(self) -> bool:
        """vLLM's --api-key / VLLM_API_KEY: every /v1 route needs the bearer token; /health does not."""
        key = self.server.api_key
        if not key or not self.path.startswith("/v1") or \
                self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_json(401, {"error": "Unauthorized"})
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path == "/health":
            self._send(200, b"", "application/json")
        elif self.path == "/metrics":
            self._send(200, self.server.metrics_text().encode(), "text/plain; version=0.0.4")
        elif self.path == "/v1/models":
            created = int(time.time())
            models = [{"id": name, "object": "model", "created": created, "owned_by": "vllm",
                       "root": self.server.served_names[0], "max_model_len": 131072}
                      for name in self.server.served_names]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "code": 404}})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}", "code": 404}})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError:
            self._send_json(400, {"error": {"message": "request body is not JSON", "code": 400}})
            return
        self.server.log_request_body(self.path, body)
        self.server.hang_while_wedged()
        if body.get("model") not in self.server.served_names:
            self._send_json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                            "type": "NotFoundError", "code": 404}})
            return
        if body.get("stream") and body.get("ignore_eos"):
            self.server.count_generated(int(body.get("max_tokens") or 0))
            self._send_stream(generation_chunks(body, body["model"], self.server.prefill_tokens_per_second,
                                                self.server.decode_tokens_per_second))
            return
        reply = build_reply(body)
        self.server.count_generated(_usage(body, reply)["completion_tokens"])
        if body.get("stream"):
            self._send_stream(completion_chunks(body, reply, body["model"]))
        else:
            self._send_json(200, completion_json(body, reply, body["model"]))

    def _send_stream(self, chunks: Iterator[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go nowhere: the request log is the record."""


class StandinServer(ThreadingHTTPServer):
    """The HTTP server plus the names it serves, where request bodies are logged and how fast a
    fixed-length generation goes."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], served_names: list[str], request_log: TextIO,
                 api_key: str | None = None,
                 prefill_tokens_per_second: float = DEFAULT_PREFILL_TOKENS_PER_SECOND,
                 decode_tokens_per_second: float = DEFAULT_DECODE_TOKENS_PER_SECOND,
                 fault_dir: str | None = None) -> None:
        super().__init__(address, StandinHandler)
        self.fault_dir = pathlib.Path(fault_dir) if fault_dir else None
        self.generated_tokens = 0
        self.running_requests = 0
        self.served_names = served_names
        self.api_key = api_key
        self.prefill_tokens_per_second = prefill_tokens_per_second
        self.decode_tokens_per_second = decode_tokens_per_second
        self._request_log = request_log
        self._log_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a probe's timeout) is no server error; anything else is."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def start_fault_watch(self) -> None:
        """A fresh engine is healthy: clear old triggers, then exit 70 once ``crash`` appears."""
        if self.fault_dir is None:
            return
        self.fault_dir.mkdir(parents=True, exist_ok=True)
        for name in ("wedge", "crash"):
            (self.fault_dir / name).unlink(missing_ok=True)

        def watch() -> None:
            while not (self.fault_dir / "crash").exists():
                time.sleep(0.5)
            print("stand-in model server: crash triggered", file=sys.stderr, flush=True)
            os._exit(70)

        threading.Thread(target=watch, daemon=True).start()

    def hang_while_wedged(self) -> None:
        """Hold the request, counted as running, for as long as the ``wedge`` file exists."""
        if self.fault_dir is None or not (self.fault_dir / "wedge").exists():
            return
        with self._log_lock:
            self.running_requests += 1
        try:
            while (self.fault_dir / "wedge").exists():
                time.sleep(0.2)
        finally:
            with self._log_lock:
                self.running_requests -= 1

    def count_generated(self, tokens: int) -> None:
        with self._log_lock:
            self.generated_tokens += tokens

    def metrics_text(self) -> str:
        """The two vLLM metrics a watchdog corroborates a failed probe with, per served name."""
        label = f'{{model_name="{self.served_names[0]}"}}'
        return (f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{label} "
                f"{self.running_requests}\n# TYPE vllm:generation_tokens_total counter\n"
                f"vllm:generation_tokens_total{label} {float(self.generated_tokens)}\n")

    def log_request_body(self, path: str, body: dict[str, Any]) -> None:
        with self._log_lock:
            self._request_log.write(json.dumps({"path": path, "body": body}) + "\n")
            self._request_log.flush()


# -- command line ---------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    """Own flags, or vLLM's ``serve MODEL [--flag value ...]`` (only host, port and names count)."""
    vllm_style = bool(argv) and argv[0] == "serve"
    model = argv[1] if vllm_style and len(argv) > 1 and not argv[1].startswith("-") else None
    rest = argv[2 if model else 1:] if vllm_style else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    # vLLM listens on all interfaces by default; the stand-in does so only when run as vLLM.
    parser.add_argument("--host", default="0.0.0.0" if vllm_style else "127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", nargs="+", default=None)
    parser.add_argument("--request-log", help="append each request body here as JSON (default: stderr)")
    parser.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY") or None,
                        help="require this bearer token on /v1 routes (default: $VLLM_API_KEY, as vLLM)")
    parser.add_argument("--prefill-tokens-per-second", type=float, default=DEFAULT_PREFILL_TOKENS_PER_SECOND,
                        help="pace of a fixed-length (ignore_eos) generation's prompt")
    parser.add_argument("--decode-tokens-per-second", type=float, default=DEFAULT_DECODE_TOKENS_PER_SECOND,
                        help="pace of a fixed-length (ignore_eos) generation's tokens")
    parser.add_argument("--fault-dir", default=os.environ.get("STANDIN_FAULT_DIR") or None,
                        help="where `wedge` and `crash` trigger files appear (default: $STANDIN_FAULT_DIR)")
    args, unknown = parser.parse_known_args(rest)
    if unknown and not vllm_style:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.served_model_name = args.served_model_name or [model or "openai/gpt-oss-120b"]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with contextlib.ExitStack() as stack:
        request_log = (stack.enter_context(open(args.request_log, "a", encoding="utf-8"))
                       if args.request_log else sys.stderr)
        server = stack.enter_context(
            StandinServer((args.host, args.port), args.served_model_name, request_log, args.api_key,
                          args.prefill_tokens_per_second, args.decode_tokens_per_second,
                          args.fault_dir))
        server.start_fault_watch()
        print(f"stand-in model server on {args.host}:{server.server_port} serving "
              f"{', '.join(args.served_model_name)}", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()
