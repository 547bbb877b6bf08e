"""LiteLLM proxy callback: Claude Code gets ``tool_use`` blocks from gpt-oss even when Harmony leaks.

gpt-oss speaks OpenAI's Harmony format. vLLM's tool parser normally turns it into OpenAI
``tool_calls``, but on some generations (parser errors, ``skip_special_tokens`` decoding) the raw
Harmony text reaches ``content``: Claude Code then sees ``<|channel|>commentary to=functions.Edit``
as text, never runs the tool, and ends its turn. This callback:

- before the call, gives every tool a string ``description`` (vLLM <= 0.23 rejects null) and drops
  keys that are not JSON schema (Claude Code's ``defer_loading``) from tool parameters;
- after the call, streaming (Anthropic SSE on /v1/messages) and not (/v1/messages and
  /v1/chat/completions), parses leaked Harmony into text and ``tool_use`` blocks, drops the
  ``analysis`` channel, strips leaked tokens from thinking, maps tool names onto the tools the
  request offered, and sets ``stop_reason: tool_use`` whenever a ``tool_use`` block is sent.

Replies without a leak pass through unchanged. Every repair logs one ``[OSSToolCallFix]`` line
saying what was repaired, never message content.

Shipped verbatim next to the proxy's config.yaml (``callbacks: litellm_tool_fix.litellm_tool_fix``):
it needs nothing but the standard library and LiteLLM's public ``CustomLogger`` base, and the
parser works without LiteLLM installed.
"""

# No `from __future__ import annotations`: LiteLLM executes this file without registering it in
# sys.modules, and dataclasses then fail on string annotations (they look the module up there).
import json
import logging
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

try:
    from litellm.integrations.custom_logger import CustomLogger
except ImportError:  # the parser is unit-tested without LiteLLM
    CustomLogger = object  # type: ignore[misc,assignment]

LOG_PREFIX = "[OSSToolCallFix]"
logger = logging.getLogger("litellm_tool_fix")
if not logger.handlers and not logging.getLogger().handlers:
    # The proxy configures only its own loggers: without a handler, repairs would not reach `docker logs`.
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)


def _log_failure(what: str, error: Exception) -> None:
    """A line naming the failure and where it happened; no message: exception messages may quote content."""
    frame = error.__traceback__
    while frame and frame.tb_next:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_code.co_name}:{frame.tb_lineno}" if frame else "?"
    logger.error("%s %s failed (%s at %s); passed on as it came", LOG_PREFIX, what, type(error).__name__,
                 where)


# -- Harmony grammar ---------------------------------------------------------------------------------

_SPECIAL_TOKEN = re.compile(r"<\|([a-z][a-z0-9_]*)\|>")
# What gives a leak away: a special token, a function recipient, or a header whose tokens vLLM skipped.
_LEAK = re.compile(r"<\|[a-z][a-z0-9_]*\|>|(?:assistant\s*)?to=functions\."
                   r"|assistant(?:analysis|commentary|final)")
_CHANNELS = ("analysis", "commentary", "final")
# With special tokens skipped a generation reads `analysis…assistantcommentary to=functions.X json{…}`
# (or `assistant to=functions.Xcommentary json{…}`, the legacy header order).
_STRIPPED_HEADER = re.compile(
    r"(?:^|assistant)"
    r"(?:\s*to=(?P<before>[\w.\-]+?)(?=analysis|commentary|final))?"
    r"(?P<channel>analysis|commentary|final)"
    r"(?:\s*to=(?P<after>[\w.\-]+))?"
)
_ROLE_AND_RECIPIENT = re.compile(r"\s*(?:assistant)?\s*(?:to=\S+)?\s*")
_INLINE_CALL = re.compile(r"to=(functions\.[\w.\-]+)")
_ARGUMENT_PREFIX = re.compile(r"^(?:\s|<\|(?:constrain|message)\|>|json|commentary)*")
_GLUED_SUFFIXES = ("json", "commentary")
_JSON = json.JSONDecoder()

# Names gpt-oss invents for Claude Code's tools (MultiEdit is handled by shape: it left Claude Code in 2.0).
_TOOL_ALIASES = {"editfile": "Edit", "edit_file": "Edit",
                 "createfile": "Write", "create_file": "Write", "write_file": "Write"}
_MULTI_EDIT_NAMES = ("multiedit", "multi_edit", "edit")


@dataclass(frozen=True)
class HarmonyCall:
    """A function call found in Harmony text: the recipient as written and its raw arguments."""

    recipient: str
    arguments: str


HarmonyPart = str | HarmonyCall


class _Message(NamedTuple):
    channel: str | None
    recipient: str | None
    content: str


def has_harmony_leak(text: str) -> bool:
    """Whether text carries Harmony tokens, a function recipient or a token-stripped header."""
    # Substring tests first: they cost microseconds on a long clean reply, the regex milliseconds.
    might_leak = "<|" in text or "to=functions." in text or "assistant" in text
    return might_leak and _LEAK.search(text) is not None


def parse_harmony(text: str) -> list[HarmonyPart]:
    """Split leaked Harmony into user-visible text and function calls, dropping ``analysis``.

    Works with the special tokens present or stripped. Never raises: what cannot be parsed stays text.
    """
    marked = _SPECIAL_TOKEN.search(text) is not None
    parts: list[HarmonyPart] = []
    for message in _marked_messages(text) if marked else _stripped_messages(text):
        if message.recipient and message.recipient != "assistant":  # `to=assistant`: a tool's answer
            parts.append(HarmonyCall(message.recipient, message.content))
        elif message.channel != "analysis":
            parts.extend(_inline_calls(message.content))
    return _merge_text(parts)


def _marked_messages(text: str, in_content: bool = False) -> list[_Message]:
    """The messages of Harmony text with its special tokens.

    A leaked generation starts inside an assistant header (the prompt ended in ``<|start|>assistant``);
    reasoning text starts inside a message's content (``in_content``).
    """
    messages: list[_Message] = []
    header: list[str] = []
    content: list[str] | None = [] if in_content else None  # None: reading a header
    position = 0
    for match in _SPECIAL_TOKEN.finditer(text):
        (header if content is None else content).append(text[position:match.start()])
        position, token = match.end(), match.group(1)
        if token in ("start", "end", "call", "return") or (token == "channel" and content is not None):
            _finish_message(messages, header, content)
            header, content = [], None
        if token == "channel" and content is None and _is_stray_text(header):
            messages.append(_Message("final", None, "".join(header)))
            header = []
        if token in ("channel", "constrain") and content is None:
            header.append(match.group(0))
        elif token == "message" and content is None:
            content = []
    (header if content is None else content).append(text[position:])
    _finish_message(messages, header, content)
    return messages


def _is_stray_text(header: list[str]) -> bool:
    """Whether what precedes ``<|channel|>`` is text the model wrote rather than a role and recipient."""
    text = "".join(header)
    return "<|" not in text and _ROLE_AND_RECIPIENT.fullmatch(text) is None


def _finish_message(messages: list[_Message], header: list[str], content: list[str] | None) -> None:
    header_text = "".join(header)
    if content is None:
        # Words outside any header are plain text the model wrote; an unfinished header is dropped.
        words = header_text.strip()
        if "<|" not in words and "to=" not in words and words not in ("", "assistant"):
            messages.append(_Message("final", None, header_text))
        return
    channel = re.search(r"<\|channel\|>\s*([a-z]+)", header_text)
    recipient = re.search(r"to=([^\s<]+)", header_text)
    messages.append(_Message(channel.group(1) if channel else None, recipient.group(1) if recipient else None,
                             "".join(content)))


def _stripped_messages(text: str) -> list[_Message]:
    """The messages of Harmony text whose special tokens were skipped when decoding."""
    headers = list(_STRIPPED_HEADER.finditer(text))
    first_start = headers[0].start() if headers else len(text)
    messages = [_Message(None, None, text[:first_start])] if text[:first_start].strip() else []
    for number, header in enumerate(headers):
        end = headers[number + 1].start() if number + 1 < len(headers) else len(text)
        recipient = header.group("before") or header.group("after")
        messages.append(_Message(header.group("channel"), recipient, text[header.end():end]))
    return messages


def _inline_calls(text: str) -> list[HarmonyPart]:
    """Text with any ``to=functions.NAME {json}`` fragments split out as calls (the last-resort fallback)."""
    parts: list[HarmonyPart] = []
    position = 0
    for match in _INLINE_CALL.finditer(text):
        if match.start() < position:
            continue
        start = match.end() + _ARGUMENT_PREFIX.match(text[match.end():]).end()
        if not text.startswith("{", start):
            continue
        end = _json_object_end(text, start)
        parts.append(text[position:match.start()])
        parts.append(HarmonyCall(match.group(1), text[match.end():end]))
        position = end
    parts.append(text[position:])
    return parts


def _json_object_end(text: str, start: int) -> int:
    """Where the JSON object at ``start`` ends; the end of text when it does not parse."""
    try:
        return _JSON.raw_decode(text, start)[1]
    except ValueError:
        return len(text)


def _merge_text(parts: Iterable[HarmonyPart]) -> list[HarmonyPart]:
    merged: list[HarmonyPart] = []
    for part in parts:
        if isinstance(part, str):
            part = _SPECIAL_TOKEN.sub("", part).strip()
            if not part:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] = f"{merged[-1]}\n\n{part}"
                continue
        merged.append(part)
    return merged


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """A call's JSON arguments as a dict (None: malformed). Tolerates ``json``/token prefixes and a tail."""
    body = raw[_ARGUMENT_PREFIX.match(raw).end():]
    if not _SPECIAL_TOKEN.sub("", body).strip():
        return {}
    try:
        value, _ = _JSON.raw_decode(body)  # the object only: a stop token or stray text may follow
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def clean_thinking(text: str) -> str:
    """Thinking text without Harmony tokens or the headers between them."""
    parts = [message.content.strip() for message in _marked_messages(text, in_content=True)
             if not message.recipient]
    return "\n\n".join(part for part in parts if part)


# -- Mapping calls onto the tools the request offered --------------------------------------------------

def offered_tool_names(request_data: Mapping[str, Any]) -> list[str]:
    """Names of the tools a request offered, Anthropic (``name``) or OpenAI (``function.name``) shaped."""
    names = []
    for tool in request_data.get("tools") or []:
        if isinstance(tool, Mapping):
            name = tool.get("name") or (tool.get("function") or {}).get("name")
            if name:
                names.append(name)
    return names


def resolve_tool_name(written: str, offered: Sequence[str]) -> str | None:
    """The offered tool a written tool name means, or None: never a tool the client did not offer."""
    by_lower = {name.lower(): name for name in offered}
    for candidate in _name_candidates(written):
        if candidate in offered:
            return candidate
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
        alias = _TOOL_ALIASES.get(candidate.lower())
        if alias in offered:
            return alias
    return None


def _name_candidates(written: str) -> list[str]:
    """The name as written, then without a ``functions.`` prefix, leaked tokens or glued header words."""
    name = written.strip()
    candidates = [name]
    name = name.split("<|", 1)[0].strip()
    name = name.removeprefix("functions.")
    candidates.append(name)
    for suffix in _GLUED_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[:-len(suffix)]
            candidates.append(name)
    return candidates


def _multi_edit_as_edits(written: str, arguments: Mapping[str, Any],
                         offered: Sequence[str]) -> list[dict[str, Any]] | None:
    """A MultiEdit-shaped call as one Edit input per element, when the client has Edit but not MultiEdit."""
    name = _name_candidates(written)[-1].lower()
    edits = arguments.get("edits")
    if (name not in _MULTI_EDIT_NAMES or "Edit" not in offered or "MultiEdit" in offered
            or not isinstance(edits, list) or not edits or "file_path" not in arguments):
        return None
    inputs = []
    for edit in edits:
        if not isinstance(edit, Mapping):
            return None
        old, new = edit.get("old_string", edit.get("old_text")), edit.get("new_string", edit.get("new_text"))
        if not isinstance(old, str) or not isinstance(new, str):
            return None
        single = {"file_path": arguments["file_path"], "old_string": old, "new_string": new}
        if "replace_all" in edit:
            single["replace_all"] = edit["replace_all"]
        inputs.append(single)
    return inputs


# -- Repairing Anthropic content blocks --------------------------------------------------------------

@dataclass
class RepairReport:
    """What a repair changed, in words fit for a log line (tool names and counts, never content)."""

    notes: list[str] = field(default_factory=list)

    def add(self, note: str) -> None:
        self.notes.append(note)

    def __bool__(self) -> bool:
        return bool(self.notes)

    def summary(self) -> str:
        counted: dict[str, int] = {}
        for note in self.notes:
            counted[note] = counted.get(note, 0) + 1
        return "; ".join(note if count == 1 else f"{note} (x{count})" for note, count in counted.items())


def new_tool_use_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def repair_blocks(blocks: Sequence[Mapping[str, Any]], offered: Sequence[str],
                  report: RepairReport) -> list[dict[str, Any]]:
    """Anthropic content blocks with Harmony leaks parsed, tokens stripped and tool names mapped."""
    repaired: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and has_harmony_leak(block.get("text") or ""):
            repaired.extend(_blocks_from_harmony(block, offered, report))
        elif kind == "thinking" and _SPECIAL_TOKEN.search(block.get("thinking") or ""):
            report.add("Harmony tokens removed from thinking")
            repaired.append({**block, "thinking": clean_thinking(block["thinking"])})
        elif kind == "tool_use" and not _is_offered_call(block, offered):
            repaired.extend(_call_blocks(block.get("name") or "", block.get("input"), offered, report,
                                         block_id=block.get("id")))
        else:
            repaired.append(dict(block))
    return repaired


def _is_offered_call(block: Mapping[str, Any], offered: Sequence[str]) -> bool:
    return block.get("name") in offered and isinstance(block.get("input"), Mapping)


def _blocks_from_harmony(block: Mapping[str, Any], offered: Sequence[str],
                         report: RepairReport) -> list[dict[str, Any]]:
    text = block["text"]
    parts = parse_harmony(text)
    if parts == [text.strip()]:  # prose that merely looked like a leak
        return [dict(block)]
    report.add("Harmony text parsed" if _SPECIAL_TOKEN.search(text) else "token-stripped Harmony text parsed")
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        else:
            blocks.extend(_call_blocks(part.recipient, part.arguments, offered, report))
    return blocks


def _call_blocks(written: str, arguments: str | Mapping[str, Any] | None, offered: Sequence[str],
                 report: RepairReport, block_id: str | None = None) -> list[dict[str, Any]]:
    """``tool_use`` blocks for one call, or a text block when it cannot be mapped or parsed."""
    parsed = parse_arguments(arguments) if isinstance(arguments, str) else arguments
    if not isinstance(parsed, Mapping):
        report.add(f"malformed arguments for {_loggable(written)} kept as text")
        return [_call_as_text(written, arguments)]
    edits = _multi_edit_as_edits(written, parsed, offered)
    if edits is not None:
        report.add(f"{_loggable(written)} split into {len(edits)} Edit calls")
        return [_tool_use(new_tool_use_id(), "Edit", edit) for edit in edits]
    name = resolve_tool_name(written, offered)
    if name is None:
        report.add(f"call to unoffered tool {_loggable(written)} kept as text")
        return [_call_as_text(written, arguments)]
    # A leaked recipient reads `functions.NAME`; a tool_use block's name should be the tool's name.
    if name != (written if block_id else _name_candidates(written)[1]):
        report.add(f"tool name {_loggable(written)} mapped to {name}")
    if block_id is None:
        report.add(f"tool call {name} recovered")
    return [_tool_use(block_id or new_tool_use_id(), name, dict(parsed))]


def _tool_use(block_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": block_id, "name": name, "input": tool_input}


def _call_as_text(written: str, arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    shown = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"type": "text", "text": _SPECIAL_TOKEN.sub("", f"to={written} {shown.strip()}")}


def _loggable(name: str) -> str:
    """A tool name as the model wrote it, bounded and printable, for the log line."""
    return repr(name[:64])


def fixed_stop_reason(stop_reason: str | None, has_tool_use: bool) -> str | None:
    """``tool_use`` whenever a tool_use block exists, and never without one."""
    if has_tool_use:
        return "tool_use"
    return "end_turn" if stop_reason == "tool_use" else stop_reason


def _fixed_finish_reason(finish_reason: str | None, has_tool_calls: bool) -> str | None:
    """The OpenAI counterpart of ``fixed_stop_reason``."""
    if has_tool_calls:
        return "tool_calls"
    return "stop" if finish_reason == "tool_calls" else finish_reason


def _note_change(report: RepairReport, field_name: str, before: str | None, after: str | None) -> None:
    if after != before:
        report.add(f"{field_name} {before} -> {after}")


def _has_tool_use(blocks: Iterable[Mapping[str, Any]]) -> bool:
    return any(block.get("type") == "tool_use" for block in blocks)


def repair_anthropic_message(message: dict[str, Any], offered: Sequence[str]) -> RepairReport:
    """Repair a non-streaming Anthropic Messages response in place."""
    report = RepairReport()
    blocks = repair_blocks(message.get("content") or [], offered, report)
    stop_reason = fixed_stop_reason(message.get("stop_reason"), _has_tool_use(blocks))
    _note_change(report, "stop_reason", message.get("stop_reason"), stop_reason)
    if report:
        message["content"] = blocks
        message["stop_reason"] = stop_reason
    return report


# -- Repairing OpenAI chat completions -----------------------------------------------------------------

def repair_openai_response(response: Any, offered: Sequence[str]) -> RepairReport:
    """Repair a non-streaming chat completion (LiteLLM ``ModelResponse``) in place."""
    report = RepairReport()
    for choice in getattr(response, "choices", None) or []:
        message = getattr(choice, "message", None)
        if message is None:
            continue
        choice_report = RepairReport()
        blocks = repair_blocks(_message_blocks(message), offered, choice_report)
        finish_reason = _fixed_finish_reason(choice.finish_reason, _has_tool_use(blocks))
        _note_change(choice_report, "finish_reason", choice.finish_reason, finish_reason)
        if choice_report:
            _set_message_blocks(message, blocks)
            choice.finish_reason = finish_reason
            report.notes.extend(choice_report.notes)
    return report


def _message_blocks(message: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if getattr(message, "reasoning_content", None):
        blocks.append({"type": "thinking", "thinking": message.reasoning_content})
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls or []:
        arguments = call.function.arguments
        parsed = parse_arguments(arguments) if isinstance(arguments, str) else arguments
        # Unparsable arguments stay a string: repair_blocks then shows the call as text.
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                       "input": arguments if parsed is None else parsed})
    return blocks


def _set_message_blocks(message: Any, blocks: Sequence[Mapping[str, Any]]) -> None:
    texts = [block["text"] for block in blocks if block["type"] == "text"]
    thinking = [block["thinking"] for block in blocks if block["type"] == "thinking"]
    calls = [{"id": block["id"], "type": "function",
              "function": {"name": block["name"], "arguments": json.dumps(block["input"])}}
             for block in blocks if block["type"] == "tool_use"]
    message.content = "\n\n".join(texts) or None
    if getattr(message, "reasoning_content", None):
        message.reasoning_content = "\n\n".join(thinking) or None
    # The message's own class turns plain dicts into its tool-call objects (no LiteLLM import needed).
    message.tool_calls = type(message)(role="assistant", tool_calls=calls).tool_calls if calls else None


# -- Pre-call: tool definitions vLLM accepts -------------------------------------------------------------

# Keys the Anthropic -> OpenAI adapter maps itself; it merges any other key into the parameters schema.
_ANTHROPIC_TOOL_KEYS = frozenset({"name", "description", "input_schema", "cache_control", "strict", "type",
                                  "eager_input_streaming"})
_JSON_SCHEMA_KEYS = frozenset({
    "$schema", "$id", "$ref", "$defs", "$comment", "$anchor", "$dynamicRef", "$dynamicAnchor",
    "definitions", "type", "properties", "required", "additionalProperties", "patternProperties",
    "propertyNames", "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
    "unevaluatedProperties", "items", "prefixItems", "contains", "minContains", "maxContains",
    "minItems", "maxItems", "uniqueItems", "unevaluatedItems", "enum", "const", "default", "examples",
    "title", "description", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "anyOf", "oneOf", "allOf", "not", "if",
    "then", "else", "readOnly", "writeOnly", "deprecated", "nullable", "contentEncoding",
    "contentMediaType", "contentSchema",
})


def fix_tool_definitions(tools: Iterable[Any], report: RepairReport) -> None:
    """Give tools a string description and drop non-schema keys from their parameters, in place."""
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        if isinstance(function, dict):  # OpenAI shape
            _fix_description(function, report)
            _drop_non_schema_keys(function.get("parameters"), report)
        elif tool.get("type") in (None, "custom"):  # Anthropic custom tool (hosted tools are left alone)
            _fix_description(tool, report)
            for key in [key for key in tool if key not in _ANTHROPIC_TOOL_KEYS]:
                del tool[key]
                report.add(f"{key} dropped from a tool")
            _drop_non_schema_keys(tool.get("input_schema"), report)


def _fix_description(definition: dict[str, Any], report: RepairReport) -> None:
    if not isinstance(definition.get("description"), str):
        definition["description"] = ""
        report.add('null or missing tool description set to ""')


def _drop_non_schema_keys(schema: Any, report: RepairReport) -> None:
    if not isinstance(schema, dict):
        return
    for key in [key for key in schema if key not in _JSON_SCHEMA_KEYS]:
        del schema[key]
        report.add(f"{key} dropped from tool parameters")


# -- Streaming: Anthropic SSE events ----------------------------------------------------------------------

def _marker_prefixes_by_last_char() -> dict[str, tuple[str, ...]]:
    """Proper prefixes of the leak marker words, by their last character (a text end looks up a few)."""
    words = ["to=functions.", "assistant to=functions.", *(f"assistant{channel}" for channel in _CHANNELS)]
    prefixes = {word[:length] for word in words for length in range(1, len(word))}
    by_last: dict[str, list[str]] = {}
    for prefix in prefixes:
        by_last.setdefault(prefix[-1], []).append(prefix)
    return {char: tuple(found) for char, found in by_last.items()}


_MARKER_PREFIXES = _marker_prefixes_by_last_char()
_PARTIAL_TOKEN = re.compile(r"<(?:\|[a-z0-9_]*\|?)?")
_MARKER_WINDOW = 32  # longer than any marker, so one that straddles deltas is still seen whole
_CHANNEL_START = re.compile(r"(?:analysis|commentary|final)")
_SSE_DELTAS = "_sse_deltas"  # deltas of a block type this callback does not know, re-sent as they came


@dataclass
class SseEvent:
    """One server-sent event as received (``raw``) and its parsed ``data``."""

    raw: bytes | str
    name: str
    data: dict[str, Any] | None


def parse_sse(item: bytes | str) -> list[SseEvent]:
    """The SSE events in one streamed item (LiteLLM 1.106.2 sends one per item; more are tolerated)."""
    text = item.decode() if isinstance(item, bytes) else item
    chunks = [chunk for chunk in text.split("\n\n") if chunk.strip()]
    events = []
    for chunk in chunks:
        name, data = "", None
        for line in chunk.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                try:
                    data = json.loads(line[5:])
                except ValueError:
                    data = None
        if isinstance(data, dict) and not name:
            name = str(data.get("type", ""))
        raw: bytes | str = item if len(chunks) == 1 else (
            (chunk + "\n\n").encode() if isinstance(item, bytes) else chunk + "\n\n")
        events.append(SseEvent(raw, name, data if isinstance(data, dict) else None))
    return events


def format_sse(name: str, data: Mapping[str, Any], as_bytes: bool) -> bytes | str:
    text = f"event: {name}\ndata: {json.dumps(data)}\n\n"
    return text.encode() if as_bytes else text


@dataclass
class _WatchedBlock:
    """A text or thinking block whose deltas may turn out to be a Harmony leak."""

    index: int
    kind: str
    held: list[SseEvent]
    held_text: list[str] = field(default_factory=list)
    started: bool = False  # its content_block_start went out
    length: int = 0  # characters of text so far
    sent: int = 0  # characters of text sent
    head: str = ""  # the first characters of its text
    tail: str = ""  # the last characters of its text


@dataclass
class _BufferedBlock:
    """A block of the leaked part of a reply, collected until the reply ends."""

    start: dict[str, Any]
    text: list[str] = field(default_factory=list)
    signature: str = ""
    partial_json: list[str] = field(default_factory=list)
    other_deltas: list[dict[str, Any]] = field(default_factory=list)

    def add_delta(self, delta: Mapping[str, Any]) -> None:
        kind = delta.get("type")
        if kind in ("text_delta", "thinking_delta"):
            self.text.append(delta.get("text", delta.get("thinking", "")))
        elif kind == "signature_delta":
            self.signature += delta.get("signature", "")
        elif kind == "input_json_delta":
            self.partial_json.append(delta.get("partial_json", ""))
        else:
            self.other_deltas.append(dict(delta))

    def content_block(self) -> dict[str, Any]:
        """The block as a complete Anthropic content block."""
        kind = self.start.get("type")
        text = "".join(self.text)
        if kind == "text":
            return {"type": "text", "text": text}
        if kind == "thinking":
            return {"type": "thinking", "thinking": text, "signature": self.signature or None}
        if kind == "tool_use":
            raw_json = "".join(self.partial_json)
            parsed = parse_arguments(raw_json) if raw_json.strip() else self.start.get("input") or {}
            return {"type": "tool_use", "id": self.start.get("id"), "name": self.start.get("name") or "",
                    "input": raw_json if parsed is None else parsed}
        return {**self.start, _SSE_DELTAS: self.other_deltas}


class StreamRepair:
    """Anthropic SSE in, repaired SSE out: events pass through until a leak may have begun.

    Text and thinking deltas go out as they come, each held back only while the text so far ends
    in something that could start a leak marker (or, for text, while it opens with a bare channel
    word). Once a leak is certain, the rest of the reply is collected, repaired and sent as proper
    blocks with fresh indexes (the Anthropic SDK applies deltas by index, so indexes are allocated
    only for blocks actually sent). A clean reply comes out event for event, unchanged.
    """

    def __init__(self, offered: Sequence[str], as_bytes: bool = True) -> None:
        self.offered = offered
        self.as_bytes = as_bytes
        self.report = RepairReport()
        self._watched: _WatchedBlock | None = None
        self._buffered: dict[int, _BufferedBlock] | None = None  # not None: collecting a leak
        self._open_block: tuple[int, str] | None = None  # (index, kind) of a sent block left open
        self._message_delta: dict[str, Any] | None = None
        self._unsent: list[bytes | str] = []  # received while collecting a leak, for abandon()
        self._next_index = 0
        self._sent_tool_use = False

    def feed(self, event: SseEvent) -> list[bytes | str]:
        """What to send for one upstream event."""
        if self._buffered is not None:
            return self._collect(event)
        return self._pass(event)

    def finish(self) -> list[bytes | str]:
        """What is still held or collected when upstream ends without ``message_stop``."""
        if self._buffered is not None:
            return self._flush()
        return self._release_watched()

    def abandon(self) -> list[bytes | str]:
        """Everything received and not yet sent, as it came: the way out when repairing went wrong."""
        held = [event.raw for event in self._watched.held] if self._watched else []
        return [*held, *self._unsent]

    # pass-through ----------------------------------------------------------------------------------

    def _pass(self, event: SseEvent) -> list[bytes | str]:
        data = event.data or {}
        watched = self._watched is not None and data.get("index") == self._watched.index
        if event.name == "content_block_start":
            return [*self._release_watched(), *self._block_start(event, data)]
        if event.name == "content_block_delta" and watched:
            return self._watched_delta(event, data)
        if event.name == "content_block_stop" and watched:
            return [*self._release_watched(), event.raw]
        if event.name == "message_delta":
            return [self._message_delta_event(data) or event.raw]
        return [event.raw]

    def _block_start(self, event: SseEvent, data: dict[str, Any]) -> list[bytes | str]:
        block = data.get("content_block") or {}
        index = data.get("index", self._next_index)
        if block.get("type") in ("text", "thinking"):
            self._watched = _WatchedBlock(index, block["type"], held=[event])
            return []
        if block.get("type") == "tool_use":
            if block.get("name") not in self.offered:
                return self._start_collecting(index, _BufferedBlock(block), [event])
            self._sent_tool_use = True
        self._next_index = index + 1
        return [event.raw]

    def _release_watched(self) -> list[bytes | str]:
        """Send what the watched block holds: nothing in it turned out to be a leak."""
        watched, self._watched = self._watched, None
        if not watched:
            return []
        self._next_index = watched.index + 1
        return [event.raw for event in watched.held]

    def _watched_delta(self, event: SseEvent, data: dict[str, Any]) -> list[bytes | str]:
        watched = self._watched
        assert watched is not None
        delta = data.get("delta") or {}
        text = delta.get("text", delta.get("thinking"))
        watched.held.append(event)
        if not isinstance(text, str):
            return []
        window = watched.tail + text
        window_start = watched.length - len(watched.tail)
        watched.held_text.append(text)
        watched.length += len(text)
        if len(watched.head) < _MARKER_WINDOW:
            watched.head = (watched.head + text)[:_MARKER_WINDOW]
        watched.tail = window[-_MARKER_WINDOW:]
        opens_with_channel = watched.kind == "text" and not watched.started and (
            _may_open_with_channel(watched.head))
        marker = _find_marker(window, watched.kind)
        if marker:
            leak_at = 0 if opens_with_channel else max(0, window_start + marker.start() - watched.sent)
            return self._leak_in_watched(leak_at)
        if opens_with_channel or _ends_in_partial_marker(window, watched.kind):
            return []
        out = [held_event.raw for held_event in watched.held]
        watched.started, watched.sent = True, watched.length
        watched.held, watched.held_text = [], []
        self._next_index = watched.index + 1
        return out

    def _leak_in_watched(self, leak_at: int) -> list[bytes | str]:
        """Send the clean part of the watched block's held text; collect the rest as the leak."""
        watched, self._watched = self._watched, None
        assert watched is not None
        held_text = "".join(watched.held_text)
        clean, leaked = held_text[:leak_at], held_text[leak_at:]
        out: list[bytes | str] = []
        if clean:
            if not watched.started:
                out.append(watched.held[0].raw)
                watched.started = True
            out.append(self._text_delta_event(watched.index, watched.kind, clean))
        if watched.started:
            self._open_block = (watched.index, watched.kind)
            self._next_index = watched.index + 1
        collected = _BufferedBlock({"type": watched.kind})
        collected.text.append(leaked)
        for held_event in watched.held:  # a thinking signature must survive the repair
            delta = (held_event.data or {}).get("delta") or {}
            if delta.get("type") == "signature_delta":
                collected.add_delta(delta)
        return [*out, *self._start_collecting(watched.index, collected, watched.held)]

    def _message_delta_event(self, data: dict[str, Any]) -> bytes | str | None:
        """The message_delta with ``stop_reason`` fixed, or None when it is right as it is."""
        delta = data.get("delta") or {}
        stop_reason = delta.get("stop_reason")
        fixed = fixed_stop_reason(stop_reason, self._sent_tool_use)
        if fixed == stop_reason:
            return None
        _note_change(self.report, "stop_reason", stop_reason, fixed)
        return self._event("message_delta", {**data, "delta": {**delta, "stop_reason": fixed}})

    # collecting the leaked rest of the reply ---------------------------------------------------------

    def _start_collecting(self, index: int, block: _BufferedBlock,
                          unsent: list[SseEvent]) -> list[bytes | str]:
        self._buffered = {index: block}
        self._unsent = [event.raw for event in unsent]
        return []

    def _collect(self, event: SseEvent) -> list[bytes | str]:
        data = event.data or {}
        assert self._buffered is not None
        self._unsent.append(event.raw)
        if event.name == "content_block_start":
            index = data.get("index", len(self._buffered))
            self._buffered[index] = _BufferedBlock(data.get("content_block") or {})
        elif event.name == "content_block_delta" and data.get("index") in self._buffered:
            self._buffered[data["index"]].add_delta(data.get("delta") or {})
        elif event.name == "message_delta":
            self._message_delta = data
        elif event.name == "message_stop":
            return [*self._flush(), event.raw]
        elif event.name != "content_block_stop":
            self._unsent.pop()
            return [event.raw]  # ping, error: nothing to repair, and keepalives must not wait
        return []

    def _flush(self) -> list[bytes | str]:
        """Repair the collected blocks, send them with fresh indexes, then the message_delta."""
        assert self._buffered is not None
        blocks = [block.content_block() for _, block in sorted(self._buffered.items())]
        self._buffered, self._unsent = None, []
        try:
            repaired = repair_blocks(blocks, self.offered, self.report)
        except Exception as error:  # a parser bug must not cost the client its reply
            _log_failure("streaming repair", error)
            repaired = blocks
        out = self._send_blocks(repaired)
        if self._message_delta is not None:
            out.append(self._message_delta_event(self._message_delta)
                       or format_sse("message_delta", self._message_delta, self.as_bytes))
            self._message_delta = None
        return out

    def _send_blocks(self, blocks: Sequence[dict[str, Any]]) -> list[bytes | str]:
        out: list[bytes | str] = []
        for block in blocks:
            kind = block.get("type")
            if self._open_block and self._open_block[1] == kind:
                # The block's clean start already went out: continue it, as a new paragraph.
                index, self._open_block = self._open_block[0], None
                continued = {**block, kind: "\n\n" + block[kind]} if block[kind] else block
                out.extend(self._block_body_events(index, continued))
                continue
            out.extend(self._close_open_block())
            index, self._next_index = self._next_index, self._next_index + 1
            out.append(self._event("content_block_start", {"index": index,
                                                           "content_block": _start_of(block)}))
            out.extend(self._block_body_events(index, block))
        out.extend(self._close_open_block())
        return out

    def _close_open_block(self) -> list[bytes | str]:
        if not self._open_block:
            return []
        index, self._open_block = self._open_block[0], None
        return [self._event("content_block_stop", {"index": index})]

    def _block_body_events(self, index: int, block: Mapping[str, Any]) -> list[bytes | str]:
        kind = block.get("type")
        if kind == "tool_use":
            self._sent_tool_use = True
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        elif kind == "text":
            deltas = [{"type": "text_delta", "text": block["text"]}]
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
            if block.get("signature"):
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            deltas = block.get(_SSE_DELTAS) or []
        return [*(self._event("content_block_delta", {"index": index, "delta": delta}) for delta in deltas),
                self._event("content_block_stop", {"index": index})]

    def _text_delta_event(self, index: int, kind: str, text: str) -> bytes | str:
        delta = ({"type": "text_delta", "text": text} if kind == "text"
                 else {"type": "thinking_delta", "thinking": text})
        return self._event("content_block_delta", {"index": index, "delta": delta})

    def _event(self, name: str, data: dict[str, Any]) -> bytes | str:
        return format_sse(name, {"type": name, **data}, self.as_bytes)


def _start_of(block: Mapping[str, Any]) -> dict[str, Any]:
    """A block's content_block_start payload: empty content, filled by the deltas that follow."""
    kind = block.get("type")
    if kind == "tool_use":
        return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {key: value for key, value in block.items() if key != _SSE_DELTAS}


def _find_marker(window: str, kind: str) -> re.Match[str] | None:
    """A leak marker in a block's recent text: any in text, only special tokens in thinking."""
    if kind == "text":
        return _LEAK.search(window) if has_harmony_leak(window) else None
    return _SPECIAL_TOKEN.search(window) if "<|" in window else None


def _ends_in_partial_marker(window: str, kind: str) -> bool:
    """Whether the text ends in what may be the first part of a marker still to come."""
    if kind == "text" and any(window.endswith(prefix) for prefix in _MARKER_PREFIXES.get(window[-1:], ())):
        return True
    token_start = window.rfind("<")
    return token_start >= 0 and _PARTIAL_TOKEN.fullmatch(window, token_start) is not None


def _may_open_with_channel(head: str) -> bool:
    """Whether a text block's start is, or may still become, a bare Harmony channel word."""
    return bool(_CHANNEL_START.match(head)) or any(channel.startswith(head) for channel in _CHANNELS)


async def repair_sse_stream(items: AsyncIterator[Any], offered: Sequence[str]) -> AsyncIterator[Any]:
    """The repaired stream; anything that is not SSE text (e.g. OpenAI chunk objects) passes untouched."""
    repair: StreamRepair | None = None
    broken = False
    async for item in items:
        if broken or not isinstance(item, (bytes, str)):
            yield item
            continue
        repair = repair or StreamRepair(offered, as_bytes=isinstance(item, bytes))
        try:
            sent = [out for event in parse_sse(item) for out in repair.feed(event)]
        except Exception as error:  # from here on the stream goes through as it came
            _log_failure("streaming repair", error)
            sent, broken = [*repair.abandon(), item], True
        for out in sent:
            yield out
    if repair is not None and not broken:
        for out in repair.finish():
            yield out
        if repair.report:
            logger.info("%s streaming /v1/messages: %s", LOG_PREFIX, repair.report.summary())


# -- The LiteLLM callback ---------------------------------------------------------------------------------

class OSSToolCallFix(CustomLogger):  # type: ignore[misc,valid-type]
    """The proxy hooks; each one logs a line when it repaired something and never raises."""

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict[str, Any],
                                  call_type: Any) -> dict[str, Any]:
        try:
            report = RepairReport()
            fix_tool_definitions(data.get("tools") or [], report)
            if report:
                logger.info("%s pre-call: %s", LOG_PREFIX, report.summary())
        except Exception as error:
            _log_failure("pre-call fix", error)
        return data

    async def async_post_call_success_hook(self, data: dict[str, Any], user_api_key_dict: Any,
                                           response: Any) -> Any:
        try:
            offered = offered_tool_names(data)
            if isinstance(response, dict) and response.get("type") == "message":
                report, where = repair_anthropic_message(response, offered), "/v1/messages"
            elif hasattr(response, "choices"):
                report, where = repair_openai_response(response, offered), "/v1/chat/completions"
            else:
                return None
        except Exception as error:
            _log_failure("repair", error)
            return None
        if not report:
            return None
        logger.info("%s %s: %s", LOG_PREFIX, where, report.summary())
        return response

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict: Any, response: Any,
                                                      request_data: dict[str, Any]) -> AsyncIterator[Any]:
        async for item in repair_sse_stream(response, offered_tool_names(request_data or {})):
            yield item


litellm_tool_fix = OSSToolCallFix()
