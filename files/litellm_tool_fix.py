"""LiteLLM proxy callback: Claude Code gets ``tool_use`` blocks from gpt-oss even when Harmony leaks.

gpt-oss speaks OpenAI's Harmony format. vLLM's tool parser normally turns it into OpenAI
``tool_calls``, but on some generations (parser errors, ``skip_special_tokens`` decoding) the raw
Harmony text reaches ``content``: Claude Code then sees ``<|channel|>commentary to=functions.Edit``
as text, never runs the tool, and ends its turn. This callback:

- before the call, gives every tool a string ``description`` (vLLM <= 0.23 rejects null) and drops
  keys that are not JSON schema (Claude Code's ``defer_loading``) from tool parameters;
- after the call, on /v1/messages and /v1/chat/completions, streaming and not, reads replies
  with one scanner that follows Harmony's grammar (``HarmonyScanner``): leaked messages become
  text and ``tool_use`` blocks (``tool_calls``), the ``analysis`` channel is dropped, leaked
  tokens leave the reasoning, a call leaked into the reasoning is used when the reply has none,
  tool names are mapped onto the tools the request offered, and ``stop_reason: tool_use``
  (``finish_reason: tool_calls``) is set whenever a call is sent.

A leak is looked for only where one can occur: Harmony an agent quotes (in a code span, a fenced
block, mid-sentence) and tokens inside a call's JSON strings are content. Replies without a leak
pass through byte for byte; streams hold back only what may still start a marker. Every repair
logs one ``[OSSToolCallFix]`` line saying what was repaired, never message content.

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
#
# A generation is a sequence of messages, ``HEADER<|message|>CONTENT`` ended by ``<|end|>``, ``<|call|>``
# or ``<|return|>``; the first header follows the prompt's ``<|start|>assistant``, later ones a
# ``<|start|>``. A header is ``[ROLE][ to=RECIPIENT]<|channel|>CHANNEL[ to=RECIPIENT][ [<|constrain|>]TYPE]``.
# A call's content is a JSON value, so a token inside one of its strings is content. Decoded with
# ``skip_special_tokens`` the same generation reads ``analysisWe need…assistantcommentary
# to=functions.Edit json{…}``. What a coding agent writes *about* Harmony is prose: a leak is only
# looked for where a message can start (the reply's start, a line's start, after a sentence or a
# message's end), never inside a code span or a fenced block.

_CHANNELS = ("analysis", "commentary", "final")
_TOKEN = re.compile(r"<\|([a-z]+)\|>")
_PARTIAL_TOKEN = re.compile(r"<(?:\|[a-z]*\|?)?\Z")
_CANDIDATES = ("<|", "to=", "assistant")  # where a leak may start in prose (then checked)
_HEADER_ITEM = re.compile(r"<\|[a-z]+\|>|\s+|[^\s<]+")
_CONTENT_TYPE = re.compile(r"[\w.\-/]+")
_MAX_HEADER = 256
_STRIPPED_HOLD = 160  # at most this much of a token-stripped header is held before it is prose
_STRIPPED_HEADER_CHARS = re.compile(r"[\w.\- =]*")
# A stripped call header: channel then recipient, recipient glued to its channel (a name may hold a
# channel word: the greedy name takes the last one), or a bare recipient; then the JSON's first brace.
_STRIPPED_CALL = re.compile(
    r"(?:assistant)?(?:(?:analysis|commentary|final) ?to=(?P<after>[\w.\-]+?)"
    r"| ?to=(?P<before>[\w.\-]+)(?:analysis|commentary|final)"
    r"| ?to=(?P<bare>[\w.\-]+?))"
    r"(?: ?(?:json|code))?\s*(?=[{\[])")
_STRIPPED_TEXT_HEADER = re.compile(r"assistant(?P<channel>analysis|commentary|final)")
_STRIPPED_OPENING = re.compile(r"(?P<channel>analysis|commentary|final)(?=[A-Z0-9{\[]| ?to=|json)")
_OPENS_WITH_CHANNEL = re.compile(r"\s*" + _STRIPPED_OPENING.pattern)
_STRIPPED_NEXT = re.compile(r"assistant(?:analysis|commentary|final| ?to=)")
_ARGS_END = re.compile(r"<\|(?:end|call|return|start|channel)\|>")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*[ \t]*\Z")
_CODE_MARK = re.compile(r"`+|~{3,}|\n")
# The end of a text that may be the start of a token, of a marker word or of a backtick run.
_WORD_STARTS = [word[:length] for word in ("to=", "assistant") for length in range(len(word) - 1, 0, -1)]
_HOLD_TAIL = re.compile(r"(?:<(?:\|[a-z]*\|?)?|[`~]+|" + "|".join(_WORD_STARTS) + r")\Z")
_WORD_LETTERS = "".join(sorted(set("".join(_WORD_STARTS))))
_MAY_HOLD = frozenset(_WORD_LETTERS + "`~")  # last characters of what _HOLD_TAIL holds ("<" apart)
_JSON = json.JSONDecoder()
_NEED_MORE = -1  # a check that cannot be decided before more text arrives


@dataclass(frozen=True)
class HarmonyCall:
    """A function call found in Harmony text: the recipient as written and its raw arguments."""

    recipient: str
    arguments: str
    decoded: Any = field(default=None, compare=False, repr=False)  # the JSON value, when it parsed


HarmonyPart = str | HarmonyCall


class _Header(NamedTuple):
    role: str | None
    channel: str | None
    recipient: str | None


def _marked_header(text: str, at: int, final: bool) -> tuple[int, _Header] | int | None:
    """The header with special tokens at ``at`` and where its content starts; ``_NEED_MORE``; None."""
    role = channel = recipient = None
    state = "begin"
    position = at
    while position < len(text):
        if position - at > _MAX_HEADER:
            return None
        item = _HEADER_ITEM.match(text, position)
        if item is None:  # a "<" that is not (yet) a whole token
            return _NEED_MORE if not final and _PARTIAL_TOKEN.match(text, position) else None
        word, position = item.group(), item.end()
        if word.isspace():
            continue
        if word.startswith("<|"):
            if word == "<|start|>" and state == "begin":
                state = "role"
            elif word == "<|channel|>" and state in ("begin", "before_channel"):
                state = "channel"
            elif word == "<|constrain|>" and state == "after_channel":
                state = "type"
            elif word == "<|message|>" and state in ("after_channel", "after_type"):
                return position, _Header(role, channel, recipient)
            else:
                return None
            continue
        if position == len(text) and not final:
            return _NEED_MORE  # the word may go on
        if state == "role":
            role, state = word, "before_channel"
        elif word.startswith("to=") and not recipient and state != "channel":
            recipient = word[3:]
            state = "before_channel" if state == "begin" else state
        elif state == "channel" and word in _CHANNELS:
            channel, state = word, "after_channel"
        elif state in ("after_channel", "type") and _CONTENT_TYPE.fullmatch(word):
            state = "after_type"
        else:
            return None
    return None if final else _NEED_MORE


def _stripped_header(text: str, at: int, final: bool) -> tuple[int, _Header] | int | None:
    """The token-stripped header at ``at`` (``assistant…`` or ``to=…``); ``_NEED_MORE``; None."""
    if not final:
        header_like = _STRIPPED_HEADER_CHARS.match(text, at, at + _STRIPPED_HOLD)
        if header_like.end() == len(text):  # no character yet that a header cannot hold
            return _NEED_MORE
    call = _STRIPPED_CALL.match(text, at)
    if call:
        return call.end(), _Header(None, None, _stripped_recipient(call))
    header = _STRIPPED_TEXT_HEADER.match(text, at)
    if header and (final or header.end() < len(text)):
        return header.end(), _Header(None, header.group("channel"), None)
    return None


def _stripped_recipient(call: re.Match[str]) -> str:
    return call.group("after") or call.group("before") or call.group("bare")


class _CodeContext:
    """Whether decided prose is inside a Markdown code span or fenced block (quoted, never a leak).

    Spans end at a line's end too: an unmatched backtick must not hide the rest of a reply.
    """

    __slots__ = ("fence", "indent", "span")

    def __init__(self) -> None:
        self.fence = ""  # the open fence ("```", "~~~~"), or ""
        self.span = 0  # length of the open span's backtick run, or 0
        self.indent = 0  # spaces since the line started, -1 once anything else came

    @property
    def inside(self) -> bool:
        return bool(self.fence or self.span)

    def advance(self, text: str) -> None:
        if "`" not in text and "~" not in text and "\n" not in text:
            self._line_text(text)
            return
        position = 0
        for mark in _CODE_MARK.finditer(text):
            self._line_text(text[position:mark.start()])
            position = mark.end()
            run = mark.group()
            if run == "\n":
                self.indent, self.span = 0, 0
                continue
            at_line_start = 0 <= self.indent <= 3
            self.indent = -1
            if self.fence:
                if at_line_start and run[0] == self.fence[0] and len(run) >= len(self.fence):
                    self.fence = ""
            elif at_line_start and len(run) >= 3:
                self.fence, self.span = run, 0
            elif run[0] == "`":
                self.span = 0 if self.span == len(run) else self.span or len(run)
        self._line_text(text[position:])

    def _line_text(self, text: str) -> None:
        if text and self.indent >= 0:
            self.indent = self.indent + len(text) if text.strip(" ") == "" else -1


@dataclass
class _Content:
    """The message whose content is being read: shown or dropped, with or without special tokens."""

    keep: bool
    stripped: bool = False


class HarmonyScanner:
    """One state machine for a reply's text (or its reasoning), fed whole or delta by delta.

    ``feed`` returns what can be decided: text to show (exactly as received while no leak was
    found) and ``HarmonyCall``s. It holds back only what may still turn into a leak: a partial
    token or marker word at the end, a header until its ``<|message|>``, a call until its JSON
    ends. In reasoning (``reasoning=True``) the text starts inside an analysis message; every
    message's content is kept as reasoning, calls are still split out.
    """

    def __init__(self, reasoning: bool = False) -> None:
        self.reasoning = reasoning
        self.leaked = False  # a leak was found: the output is no longer the input as it came
        self.stripped = False  # ... and it was token-stripped Harmony
        self._buffer = ""
        self._parts: list[HarmonyPart] = []
        self._content: _Content | None = _Content(keep=True) if reasoning else None
        self._call: str | None = None  # recipient of the call whose arguments are being read
        self._args_scan = 0
        self._json_start = -1  # where the call's JSON value starts in the buffer, once seen
        self._json_pieces: list[str] = []  # deltas of a JSON value that cannot have ended yet
        self._json_tail = ""
        self._json_held = 0
        self._code = _CodeContext()
        self._recent = ""  # the last decided characters of the current message (boundary look-back)
        self._message_start = True  # nothing but whitespace decided in the current message yet
        self._opening = not reasoning  # the reply's opening may still be token-stripped Harmony
        self._opening_scan = 0
        self._lead_space = ""  # whitespace the reply opens with, held: a leak may follow
        self._strip_leading = False
        self._separate = False
        self._last_part = ""  # "text" or "call"

    @property
    def pending(self) -> int:
        """Characters received and not yet returned or dropped."""
        return len(self._buffer) + len(self._lead_space) + self._json_held

    def feed(self, text: str) -> list[HarmonyPart]:
        if self._json_start >= 0:  # a long argument: decode only once something may end it
            window = self._json_tail + text
            if "<|" not in window and "assistant" not in window:
                self._json_pieces.append(text)
                self._json_held += len(text)
                self._json_tail = window[-len("assistant"):]
                return []
        if self._plain_prose(text):  # the common case, a delta of clean prose: decided at once
            self._recent = (self._recent + text)[-8:]
            self._message_start = self._message_start and text.isspace()
            self._code.advance(text)
            self._show(text)
            parts, self._parts = self._parts, []
            return parts
        self._buffer += "".join(self._json_pieces) + text
        self._json_pieces, self._json_held = [], 0
        return self._run(final=False)

    def _plain_prose(self, text: str) -> bool:
        """Whether text is shown prose that cannot start, end or hold back anything."""
        if (self._buffer or self._call is not None or self._opening or self._lead_space
                or (self._content is not None and not self._content.keep)
                or "<" in text or "to=" in text or "assistant" in text):
            return False
        if text[-1:] not in _MAY_HOLD:
            return True
        # Ending in letters a marker word starts with: held only where a message may start,
        # never inside a word (the common case: a delta cut mid-word).
        stem = text.rstrip(_WORD_LETTERS)
        return bool(stem) and stem[-1].isalnum()

    def finish(self) -> list[HarmonyPart]:
        self._buffer += "".join(self._json_pieces)
        self._json_pieces, self._json_held = [], 0
        parts = self._run(final=True)
        if self._lead_space:
            parts.append(self._lead_space)
            self._lead_space = ""
        return parts

    # -- the loop -------------------------------------------------------------------------------------

    def _run(self, final: bool) -> list[HarmonyPart]:
        while self._buffer:
            step = self._read_arguments if self._call is not None else self._read_prose
            if not step(final):
                break
        parts, self._parts = self._parts, []
        return parts

    def _read_prose(self, final: bool) -> bool:
        """Consume prose up to the next structural element; False when more text is needed."""
        buf = self._buffer
        if self._opening:
            decided = self._read_opening(final)
            if decided is not True:
                return decided is None
            buf = self._buffer
        position = 0
        while True:
            at, word = _next_of(buf, _CANDIDATES, position)
            if at < 0:
                break
            self._decide(buf[position:at])
            end = self._structure_at(buf, at, final)
            if end == _NEED_MORE:
                self._buffer = buf[at:]
                return False
            if end is None:
                self._decide(word)
                position = at + len(word)
                continue
            self._buffer = buf[end:]
            return True
        keep = len(buf) if final else len(buf) - self._tail_to_hold(buf, position)
        self._decide(buf[position:keep])
        self._buffer = buf[keep:]
        return final and bool(self._buffer)

    def _read_opening(self, final: bool) -> bool | None:
        """A reply opening with a bare channel word (``analysisWe need…``); True: go on as prose."""
        buf = self._buffer
        start = len(buf) - len(buf.lstrip())
        opening = _STRIPPED_OPENING.match(buf, start)
        if opening is None:
            rest = buf[start:]
            if not final and len(rest) < 12 and any(word.startswith(rest) for word in _CHANNELS):
                return False
            self._opening = False
            return True
        call = _STRIPPED_CALL.match(buf, start)
        if call:
            self._opening = False
            self._open_message(_Header(None, None, _stripped_recipient(call)), stripped=True)
            self._buffer = buf[call.end():]
            return None
        if _STRIPPED_NEXT.search(buf, max(opening.end(), self._opening_scan)):
            self._opening = False
            self._open_message(_Header(None, opening.group("channel"), None), stripped=True)
            self._buffer = buf[opening.end():]
            return None
        if not final:
            self._opening_scan = max(opening.end(), len(buf) - _STRIPPED_HOLD)
            return False  # prose or the analysis of a stripped leak: the next header tells
        self._opening = False
        return True

    def _structure_at(self, buf: str, at: int, final: bool) -> int | None:
        """Where the structural element at ``at`` ends (state updated), ``_NEED_MORE``, or None: prose."""
        if self._code.inside:
            return None
        boundary = self._at_boundary()
        if buf.startswith("<|", at):
            token = _TOKEN.match(buf, at)
            if token is None:
                return _NEED_MORE if not final and _PARTIAL_TOKEN.match(buf, at) else None
            if token.group(1) in ("start", "channel"):
                return self._open_if(_marked_header(buf, at, final), stripped=False) if boundary else None
            if token.group(1) in ("end", "call", "return"):
                glued = bool(self._recent) and not self._recent[-1].isspace()
                return self._terminator(buf, token.end(), final) if glued or boundary else None
            return None
        if buf.startswith("to=", at):
            if self._content is not None or not boundary:
                return None
            marked = _marked_header(buf, at, final)
            if isinstance(marked, tuple):
                return self._open_if(marked, stripped=False)
            stripped = self._open_if(_stripped_header(buf, at, final), stripped=True)
            return _NEED_MORE if stripped is None and marked == _NEED_MORE else stripped
        if not boundary and not (self._content is not None and self._content.stripped):
            return None
        return self._open_if(_stripped_header(buf, at, final), stripped=True)

    def _open_if(self, found: tuple[int, _Header] | int | None, stripped: bool) -> int | None:
        if not isinstance(found, tuple):
            return found
        end, header = found
        self._open_message(header, stripped)
        return end

    def _terminator(self, buf: str, after: int, final: bool) -> int | None:
        """A message-ending token: ends the message being read, or the tail of one whose start was lost."""
        if self._content is not None or self.reasoning:
            self._mark_structure()
            return after
        rest = buf[after:]
        if rest.startswith(("<|start|>", "<|channel|>")) or (final and not rest.strip()):
            self._mark_structure()
            return after
        if not final and (not rest.strip() or _PARTIAL_TOKEN.match(buf, after)):
            return _NEED_MORE
        return None

    def _open_message(self, header: _Header, stripped: bool) -> None:
        self._mark_structure()
        self.stripped = self.stripped or stripped
        is_assistant = header.role in (None, "assistant")
        if header.recipient and header.recipient != "assistant" and is_assistant:
            self._call, self._args_scan, self._json_start, self._content = header.recipient, 0, -1, None
            return
        keep = self.reasoning or (is_assistant and header.channel != "analysis")
        self._content = _Content(keep=keep, stripped=stripped)

    def _mark_structure(self) -> None:
        """Something Harmony was consumed: a new message (or plain text) starts after it."""
        self.leaked = True
        self._content = _Content(keep=True) if self.reasoning else None
        self._code = _CodeContext()
        self._recent, self._message_start = "", True
        self._lead_space = ""
        self._strip_leading = self._separate = True

    # -- call arguments -------------------------------------------------------------------------------

    def _read_arguments(self, final: bool) -> bool:
        """Consume a call's arguments: a JSON value read by the decoder, then its terminator."""
        buf = self._buffer
        start = self._json_start if self._json_start >= 0 else len(buf) - len(buf.lstrip())
        if start == len(buf) and not final:
            return False
        if buf.startswith(("{", "["), start):
            self._json_start, self._json_tail = start, buf[-len("assistant"):]
        else:
            end = _ARGS_END.search(buf, start)
            if end is None and not final:
                return False
            return self._end_call(buf, start, end.start() if end else len(buf))
        if not final and self._args_scan and _next_of(buf, ("<|", "assistant"), self._args_scan)[0] < 0:
            self._args_scan = max(start, len(buf) - len("assistant"))
            return False
        try:
            value, value_end = _JSON.raw_decode(buf, start)
        except ValueError:
            if not final:
                self._args_scan = max(start, len(buf) - len("assistant"))
                return False
            end = _ARGS_END.search(buf, start)  # malformed: up to the first terminator
            return self._end_call(buf, start, end.start() if end else len(buf))
        after = len(buf) - len(buf[value_end:].lstrip())
        if not final and (after == len(buf) or _PARTIAL_TOKEN.match(buf, after)):
            self._args_scan = max(start, len(buf) - len("assistant"))
            return False
        return self._end_call(buf, start, value_end, value)

    def _end_call(self, buf: str, start: int, end: int, value: Any = None) -> bool:
        recipient, self._call, self._json_start, self._json_tail = self._call, None, -1, ""
        self._parts.append(HarmonyCall(recipient or "", buf[start:end], value))
        self._last_part = "call"
        self._mark_structure()
        rest = buf[end:]
        token = _TOKEN.match(rest.lstrip())
        if token and token.group(1) in ("end", "call", "return"):
            rest = rest.lstrip()[token.end():]
        self._buffer = rest
        return True

    # -- prose ----------------------------------------------------------------------------------------

    def _at_boundary(self) -> bool:
        recent = self._recent
        if self._message_start:
            return True
        trimmed = recent.rstrip(" \t")
        return trimmed.endswith("\n") or _SENTENCE_END.search(recent) is not None

    def _tail_to_hold(self, buf: str, position: int) -> int:
        """How much of the text's end may start a marker still to come (or a backtick run)."""
        tail = _HOLD_TAIL.search(buf, max(position, len(buf) - len("assistant")))
        if tail is None:
            return 0
        held = tail.group()
        if held[0] in "<`~" or self._boundary_before(buf[position:tail.start()]):
            return len(held)
        return 0

    def _boundary_before(self, decided: str) -> bool:
        recent = (self._recent + decided)[-8:]
        if self._message_start and not decided.strip():
            return True
        if self._content is not None and self._content.stripped:
            return True
        return recent.rstrip(" \t").endswith("\n") or _SENTENCE_END.search(recent) is not None

    def _decide(self, text: str) -> None:
        """Prose decided not to be a leak: shown (or dropped with its message)."""
        if not text:
            return
        self._code.advance(text)
        self._recent = (self._recent + text)[-8:]
        if self._message_start and text.strip():
            self._message_start = False
        if self._content is None or self._content.keep:
            self._show(text)

    def _show(self, text: str) -> None:
        if self._strip_leading:
            text = text.lstrip()
            if not text:
                return
            self._strip_leading = False
        if not self.leaked and not self._last_part and text.isspace():
            self._lead_space += text
            return
        text, self._lead_space = self._lead_space + text, ""
        if self._separate and self._last_part == "text":
            text = "\n\n" + text
        self._separate = False
        self._parts.append(text)
        self._last_part = "text"


def _next_of(text: str, words: Sequence[str], start: int) -> tuple[int, str]:
    """The first of ``words`` in text from ``start`` and where (-1 if none): str.find beats a regex here."""
    found, first = -1, ""
    for word in words:
        at = text.find(word, start, found if found >= 0 else len(text))
        if at >= 0:
            found, first = at, word
    return found, first


def might_leak(text: str, reasoning: bool = False) -> bool:
    """Cheap test: whether text could hold Harmony at all (substring tests cost microseconds)."""
    if "<|" in text or "to=" in text or "assistant" in text:
        return True
    return not reasoning and _OPENS_WITH_CHANNEL.match(text) is not None


def scan_harmony(text: str, reasoning: bool = False) -> tuple[list[HarmonyPart], HarmonyScanner]:
    """The parts of a whole text (adjacent text joined), and the scanner that read it."""
    scanner = HarmonyScanner(reasoning)
    parts: list[HarmonyPart] = []
    for part in [*scanner.feed(text), *scanner.finish()]:
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)
    return parts, scanner


def parse_harmony(text: str) -> list[HarmonyPart]:
    """Leaked Harmony as shown text and function calls, ``analysis`` dropped; non-leaks as they came."""
    return scan_harmony(text)[0]


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """A call's JSON arguments as a dict (None: malformed or not an object)."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# -- Mapping calls onto the tools the request offered --------------------------------------------------

# Names gpt-oss invents for Claude Code's tools (MultiEdit is handled by shape: it left Claude Code in 2.0).
_TOOL_ALIASES = {"editfile": "Edit", "edit_file": "Edit",
                 "createfile": "Write", "create_file": "Write", "write_file": "Write"}
_MULTI_EDIT_NAMES = ("multiedit", "multi_edit", "edit")
_GLUED_SUFFIXES = ("json", "code", *_CHANNELS)

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
    """The name as written, then without its namespace, leaked tokens or glued header words.

    Token-stripped headers glue the channel and content type to the name
    (``to=functions.final_reportcommentary json``): each cut is tried, longest name first.
    """
    name = written.strip()
    candidates = [name]
    name = name.split("<|", 1)[0].strip().removeprefix("functions.")
    candidates.append(name)
    cut = True
    while cut:
        cut = False
        for suffix in _GLUED_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[:-len(suffix)]
                candidates.append(name)
                cut = True
    if "." in name:  # another namespace (container.exec, browser.search): the tool's own name
        candidates.append(name.rsplit(".", 1)[1])
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


def _scan_note(scanner: HarmonyScanner) -> str:
    if scanner.reasoning:
        return "Harmony tokens removed from thinking"
    return "token-stripped Harmony text parsed" if scanner.stripped else "Harmony text parsed"


def repair_blocks(blocks: Sequence[Mapping[str, Any]], offered: Sequence[str],
                  report: RepairReport) -> list[dict[str, Any]]:
    """Anthropic content blocks with Harmony leaks parsed, tokens stripped and tool names mapped.

    Calls found only in thinking become tool_use blocks when the reply itself has none.
    """
    repaired: list[dict[str, Any]] = []
    reasoning_calls: list[HarmonyCall] = []
    for block in blocks:
        kind = block.get("type")
        body = block.get(kind) if kind in ("text", "thinking") else None
        if isinstance(body, str) and might_leak(body, reasoning=kind == "thinking"):
            parts, scanner = scan_harmony(body, reasoning=kind == "thinking")
            if not scanner.leaked:
                repaired.append(dict(block))
                continue
            report.add(_scan_note(scanner))
            if kind == "thinking":
                repaired.append({**block, "thinking": "".join(p for p in parts if isinstance(p, str))})
                reasoning_calls.extend(p for p in parts if isinstance(p, HarmonyCall))
                continue
            for part in parts:
                if isinstance(part, HarmonyCall):
                    repaired.extend(_harmony_call_blocks(part, offered, report))
                elif part:
                    repaired.append({"type": "text", "text": part})
        elif kind == "tool_use" and not _is_offered_call(block, offered):
            repaired.extend(_call_blocks(block.get("name") or "", block.get("input"), offered, report,
                                         block_id=block.get("id")))
        else:
            repaired.append(dict(block))
    if not _has_tool_use(repaired):
        repaired.extend(_reasoning_call_blocks(reasoning_calls, offered, report))
    return repaired


def _reasoning_call_blocks(calls: Iterable[HarmonyCall], offered: Sequence[str],
                           report: RepairReport) -> list[dict[str, Any]]:
    """tool_use blocks for calls leaked into the reasoning; what cannot be mapped stays reasoning."""
    blocks = []
    for call in calls:
        found = _harmony_call_blocks(call, offered, report, where=" in thinking")
        blocks.extend(block for block in found if block["type"] == "tool_use")
    return blocks


def _is_offered_call(block: Mapping[str, Any], offered: Sequence[str]) -> bool:
    return block.get("name") in offered and isinstance(block.get("input"), Mapping)


def _harmony_call_blocks(call: HarmonyCall, offered: Sequence[str], report: RepairReport,
                         where: str = "") -> list[dict[str, Any]]:
    return _call_blocks(call.recipient, call.arguments, offered, report, where=where,
                        decoded=call.decoded if isinstance(call.decoded, dict) else None)


def _call_blocks(written: str, arguments: str | Mapping[str, Any] | None, offered: Sequence[str],
                 report: RepairReport, block_id: str | None = None, where: str = "",
                 decoded: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``tool_use`` blocks for one call, or a text block when it cannot be mapped or parsed."""
    parsed = decoded or (parse_arguments(arguments) if isinstance(arguments, str) else arguments)
    if not isinstance(parsed, Mapping):
        report.add(f"malformed arguments for {_loggable(written)}{where} kept as text")
        return [_call_as_text(written, arguments)]
    edits = _multi_edit_as_edits(written, parsed, offered)
    if edits is not None:
        report.add(f"{_loggable(written)}{where} split into {len(edits)} Edit calls")
        return [_tool_use(new_tool_use_id(), "Edit", edit) for edit in edits]
    name = resolve_tool_name(written, offered)
    if name is None:
        report.add(f"call to unoffered tool {_loggable(written)}{where} kept as text")
        return [_call_as_text(written, arguments)]
    # A leaked recipient reads `functions.NAME`; a tool_use block's name should be the tool's name.
    if name != (written if block_id else _name_candidates(written)[1]):
        report.add(f"tool name {_loggable(written)} mapped to {name}")
    if block_id is None:
        report.add(f"tool call {name} recovered{where}")
    return [_tool_use(block_id or new_tool_use_id(), name, dict(parsed))]


def _tool_use(block_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": block_id, "name": name, "input": tool_input}


def _call_as_text(written: str, arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    shown = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"type": "text", "text": f"to={written} {shown.strip()}"}


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
    # The scanner already separates text from different messages, as the streams send it.
    message.content = "".join(texts) or None
    if getattr(message, "reasoning_content", None):
        message.reasoning_content = "".join(thinking) or None
    message.tool_calls = _typed_tool_calls(message, [_openai_tool_call(block) for block in blocks
                                                     if block["type"] == "tool_use"])


def _openai_tool_call(block: Mapping[str, Any], index: int | None = None) -> dict[str, Any]:
    call = {"id": block["id"], "type": "function",
            "function": {"name": block["name"], "arguments": json.dumps(block["input"])}}
    return call if index is None else {"index": index, **call}


def _typed_tool_calls(message: Any, calls: list[dict[str, Any]]) -> Any:
    """The message's own class turns plain dicts into its tool-call objects (no LiteLLM import needed)."""
    return type(message)(role="assistant", tool_calls=calls).tool_calls if calls else None


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
class _LiveBlock:
    """An upstream text or thinking block, scanned as its deltas arrive.

    While the scanner finds no leak, the block's own events go out as they came (held only while
    the scanner holds text back). Once it finds one, the rest is sent as fresh events.
    """

    upstream: int
    kind: str
    scanner: HarmonyScanner
    held: list[SseEvent]
    unsent: list[HarmonyPart] = field(default_factory=list)  # decided while events were held
    open: int | None = None  # output index of the block this one is being sent as
    signature: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _CollectedToolUse:
    """A tool_use block naming a tool the client did not offer, collected to be mapped."""

    upstream: int
    start: dict[str, Any]
    partial_json: list[str] = field(default_factory=list)


class StreamRepair:
    """Anthropic SSE in, repaired SSE out, event by event: a clean reply comes out unchanged.

    Output indexes are allocated only for blocks actually sent (the Anthropic SDK applies deltas
    by index); an event keeps its raw bytes whenever its index is unchanged.
    """

    def __init__(self, offered: Sequence[str], as_bytes: bool = True) -> None:
        self.offered = offered
        self.as_bytes = as_bytes
        self.report = RepairReport()
        self._live: _LiveBlock | None = None
        self._collected: _CollectedToolUse | None = None
        self._index_map: dict[int, int] = {}
        self._next_index = 0
        self._sent_tool_use = False
        self._reasoning_calls: list[HarmonyCall] = []

    def feed(self, event: SseEvent) -> list[bytes | str]:
        """What to send for one upstream event."""
        data = event.data or {}
        index = data.get("index")
        live, collected = self._live, self._collected
        if event.name == "content_block_start":
            return [*self._end_live(), *self._block_start(event, data)]
        if live is not None and index == live.upstream:
            if event.name == "content_block_delta":
                return self._live_delta(live, event, data.get("delta") or {})
            if event.name == "content_block_stop":
                return self._end_live(event)
        if collected is not None and index == collected.upstream:
            if event.name == "content_block_delta":
                collected.partial_json.append((data.get("delta") or {}).get("partial_json", ""))
                return []
            if event.name == "content_block_stop":
                return self._send_collected()
        if event.name == "message_delta":
            return [*self._end_live(), *self._send_collected(), *self._reasoning_tool_uses(),
                    self._message_delta_event(event, data)]
        if index in self._index_map:
            return [self._reindexed(event, self._index_map[index])]
        return [event.raw]

    def finish(self) -> list[bytes | str]:
        """What is still held when upstream ends without ``message_stop``."""
        return [*self._end_live(), *self._send_collected()]

    def abandon(self) -> list[bytes | str]:
        """Everything received and not yet sent, as it came: the way out when repairing went wrong."""
        return [event.raw for event in self._live.held] if self._live else []

    # blocks passing through --------------------------------------------------------------------------

    def _block_start(self, event: SseEvent, data: dict[str, Any]) -> list[bytes | str]:
        block = data.get("content_block") or {}
        upstream = data.get("index", self._next_index)
        if block.get("type") in ("text", "thinking"):
            self._live = _LiveBlock(upstream, block["type"], HarmonyScanner(block["type"] == "thinking"),
                                    held=[event])
            return []
        if block.get("type") == "tool_use":
            if block.get("name") not in self.offered:
                self._collected = _CollectedToolUse(upstream, block)
                return []
            self._sent_tool_use = True
        index = self._index_map[upstream] = self._new_index()
        return [self._reindexed(event, index)]

    def _new_index(self) -> int:
        index, self._next_index = self._next_index, self._next_index + 1
        return index

    def _reindexed(self, event: SseEvent, index: int) -> bytes | str:
        data = event.data or {}
        return event.raw if data.get("index") == index else format_sse(event.name, {**data, "index": index},
                                                                       self.as_bytes)

    def _message_delta_event(self, event: SseEvent, data: dict[str, Any]) -> bytes | str:
        delta = data.get("delta") or {}
        stop_reason = delta.get("stop_reason")
        fixed = fixed_stop_reason(stop_reason, self._sent_tool_use)
        if fixed == stop_reason:
            return event.raw
        _note_change(self.report, "stop_reason", stop_reason, fixed)
        return self._event("message_delta", {**data, "delta": {**delta, "stop_reason": fixed}})

    # text and thinking blocks ------------------------------------------------------------------------

    def _live_delta(self, live: _LiveBlock, event: SseEvent, delta: Mapping[str, Any]) -> list[bytes | str]:
        text = delta.get("text", delta.get("thinking"))
        if isinstance(text, str) and live.scanner.leaked:
            parts = live.scanner.feed(text)
            return self._send_parts(live, parts) if parts else []
        if not isinstance(text, str):
            if live.scanner.leaked:
                if delta.get("type") == "signature_delta":
                    live.signature.append(dict(delta))
                    return []
                return [] if live.open is None else [self._reindexed(event, live.open)]
            live.held.append(event)
            return []
        parts = live.scanner.feed(text)
        if not live.scanner.leaked and not live.held and live.open is not None and not live.scanner.pending:
            return [self._reindexed(event, live.open)]  # clean so far: the event as it came
        live.held.append(event)
        return self._send_parts(live, parts)

    def _send_parts(self, live: _LiveBlock, parts: list[HarmonyPart]) -> list[bytes | str]:
        if not live.scanner.leaked:
            if live.scanner.pending:
                live.unsent.extend(parts)
                return []
            return self._release(live)
        if live.held:  # superseded by the parts, but a thinking signature must survive the repair
            live.signature.extend((e.data or {}).get("delta") or {} for e in live.held
                                  if ((e.data or {}).get("delta") or {}).get("type") == "signature_delta")
            live.held = []
        parts, live.unsent = [*live.unsent, *parts], []
        out: list[bytes | str] = []
        for part in parts:
            if isinstance(part, str):
                out.extend(self._send_text(live, part))
            elif live.kind == "thinking":
                self._reasoning_calls.append(part)
            else:
                out.extend(self._close(live))
                blocks = _harmony_call_blocks(part, self.offered, self.report)
                out.extend(event for block in blocks for event in self._whole_block(block))
        return out

    def _release(self, live: _LiveBlock) -> list[bytes | str]:
        """Send the block's held events as they came (the block is clean so far)."""
        out = []
        for event in live.held:
            if event.name == "content_block_start":
                live.open = self._new_index()
            out.append(self._reindexed(event, live.open if live.open is not None else live.upstream))
        live.held, live.unsent = [], []
        return out

    def _end_live(self, stop: SseEvent | None = None) -> list[bytes | str]:
        live, self._live = self._live, None
        if live is None:
            return []
        out = self._send_parts(live, live.scanner.finish())
        if not live.scanner.leaked:
            out.extend(self._release(live))
            if stop is not None and live.open is not None:
                out.append(self._reindexed(stop, live.open))
            return out
        if live.scanner.leaked:
            self.report.add(_scan_note(live.scanner))
        if live.signature and live.open is None:
            out.extend(self._send_text(live, "", force=True))
        return [*out, *self._close(live)]

    def _send_text(self, live: _LiveBlock, text: str, force: bool = False) -> list[bytes | str]:
        if not text and not force:
            return []
        out: list[bytes | str] = []
        if live.open is None:
            live.open = self._new_index()
            start = ({"type": "text", "text": ""} if live.kind == "text"
                     else {"type": "thinking", "thinking": "", "signature": ""})
            out.append(self._event("content_block_start", {"index": live.open, "content_block": start}))
        if text:
            key = "text" if live.kind == "text" else "thinking"
            out.append(self._event("content_block_delta", {"index": live.open,
                                                           "delta": {"type": f"{key}_delta", key: text}}))
        return out

    def _close(self, live: _LiveBlock) -> list[bytes | str]:
        if live.open is None:
            return []
        index, live.open = live.open, None
        signatures, live.signature = live.signature, []
        deltas = [self._event("content_block_delta", {"index": index, "delta": sig}) for sig in signatures]
        return [*deltas, self._event("content_block_stop", {"index": index})]

    # tool_use blocks ---------------------------------------------------------------------------------

    def _send_collected(self) -> list[bytes | str]:
        collected, self._collected = self._collected, None
        if collected is None:
            return []
        raw_json = "".join(collected.partial_json)
        parsed = parse_arguments(raw_json) if raw_json.strip() else collected.start.get("input") or {}
        blocks = _call_blocks(collected.start.get("name") or "", raw_json if parsed is None else parsed,
                              self.offered, self.report, block_id=collected.start.get("id"))
        return [event for block in blocks for event in self._whole_block(block)]

    def _reasoning_tool_uses(self) -> list[bytes | str]:
        calls, self._reasoning_calls = self._reasoning_calls, []
        if self._sent_tool_use or not calls:
            return []
        blocks = _reasoning_call_blocks(calls, self.offered, self.report)
        return [event for block in blocks for event in self._whole_block(block)]

    def _whole_block(self, block: Mapping[str, Any]) -> list[bytes | str]:
        index = self._new_index()
        if block["type"] == "tool_use":
            self._sent_tool_use = True
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        return [self._event("content_block_start", {"index": index, "content_block": start}),
                self._event("content_block_delta", {"index": index, "delta": delta}),
                self._event("content_block_stop", {"index": index})]

    def _event(self, name: str, data: dict[str, Any]) -> bytes | str:
        return format_sse(name, {"type": name, **data}, self.as_bytes)


# -- Streaming: OpenAI chat.completion.chunk objects ------------------------------------------------------

@dataclass
class _ChoiceStream:
    """One choice of a chat-completions stream: its content and reasoning scanners, its tool calls."""

    content: HarmonyScanner = field(default_factory=HarmonyScanner)
    reasoning: HarmonyScanner = field(default_factory=lambda: HarmonyScanner(reasoning=True))
    next_call: int = 0  # the index the next tool call gets
    reasoning_calls: list[HarmonyCall] = field(default_factory=list)
    finished: bool = False


class ChunkStreamRepair:
    """``chat.completion.chunk`` objects (LiteLLM ``ModelResponseStream``) in, repaired chunks out.

    Content and reasoning deltas go through the same scanner as everything else; a clean delta is
    left as it came. Recovered calls go out as ``tool_calls`` deltas of chunks copied from the
    current one, before the chunk that carries ``finish_reason`` (set to ``tool_calls``).
    """

    def __init__(self, offered: Sequence[str]) -> None:
        self.offered = offered
        self.report = RepairReport()
        self._choices: dict[int, _ChoiceStream] = {}
        self._last: Any = None

    def feed(self, chunk: Any) -> list[Any]:
        choices = getattr(chunk, "choices", None) or []
        if choices:
            self._last = chunk
        before: list[Any] = []
        for choice in choices:
            stream = self._choices.setdefault(getattr(choice, "index", 0), _ChoiceStream())
            delta = getattr(choice, "delta", None)
            if delta is not None:
                before.extend(self._repair_delta(chunk, choice, stream, delta))
            if getattr(choice, "finish_reason", None) and not stream.finished:
                before.extend(self._finish_choice(chunk, choice, stream))
        return [*before, chunk]

    def finish(self) -> list[Any]:
        """Chunks for what is still held when upstream ended without a finish_reason."""
        out: list[Any] = []
        for index, stream in self._choices.items():
            if not stream.finished and self._last is not None:
                out.extend(self._finish_choice(self._last, None, stream, index))
        return out

    def _repair_delta(self, chunk: Any, choice: Any, stream: _ChoiceStream, delta: Any) -> list[Any]:
        for call in getattr(delta, "tool_calls", None) or []:
            stream.next_call = max(stream.next_call, (getattr(call, "index", None) or 0) + 1)
            self._map_streamed_name(call)
        reasoning = getattr(delta, "reasoning_content", None)
        if isinstance(reasoning, str) and reasoning:
            parts = stream.reasoning.feed(reasoning)
            shown = self._reasoning_parts(stream, parts)
            if stream.reasoning.leaked or shown != reasoning:
                delta.reasoning_content = shown or None
        content = getattr(delta, "content", None)
        if not isinstance(content, str) or not content:
            return []
        parts = stream.content.feed(content)
        if not stream.content.leaked:
            shown = "".join(part for part in parts if isinstance(part, str))
            if shown != content:
                delta.content = shown or None
            return []
        delta.content = None
        return self._content_chunks(chunk, getattr(choice, "index", 0), stream, parts)

    def _reasoning_parts(self, stream: _ChoiceStream, parts: list[HarmonyPart]) -> str:
        stream.reasoning_calls.extend(part for part in parts if isinstance(part, HarmonyCall))
        return "".join(part for part in parts if isinstance(part, str))

    def _content_chunks(self, chunk: Any, index: int, stream: _ChoiceStream,
                        parts: list[HarmonyPart]) -> list[Any]:
        """Chunks for decided parts of a leaked reply: text as content, calls as tool_calls."""
        out, text = [], ""
        for part in parts:
            if isinstance(part, str):
                text += part
                continue
            for block in _harmony_call_blocks(part, self.offered, self.report):
                if block["type"] == "text":
                    text += ("\n\n" if text else "") + block["text"]
                    continue
                if text:
                    out.append(_chunk_like(chunk, index, content=text))
                    text = ""
                out.append(self._tool_call_chunk(chunk, index, stream, block))
        if text:
            out.append(_chunk_like(chunk, index, content=text))
        return out

    def _tool_call_chunk(self, chunk: Any, index: int, stream: _ChoiceStream,
                         block: Mapping[str, Any]) -> Any:
        call = _openai_tool_call({**block, "id": f"call_{block['id'].removeprefix('toolu_')}"},
                                 stream.next_call)
        stream.next_call += 1
        return _chunk_like(chunk, index, tool_calls=[call])

    def _finish_choice(self, chunk: Any, choice: Any, stream: _ChoiceStream,
                       index: int | None = None) -> list[Any]:
        stream.finished = True
        index = getattr(choice, "index", 0) if index is None else index
        out: list[Any] = []
        shown = self._reasoning_parts(stream, stream.reasoning.finish())
        if shown:
            out.append(_chunk_like(chunk, index, reasoning_content=shown))
        if stream.reasoning.leaked:
            self.report.add(_scan_note(stream.reasoning))
        parts = stream.content.finish()
        if stream.content.leaked:
            out.extend(self._content_chunks(chunk, index, stream, parts))
            self.report.add(_scan_note(stream.content))
        elif parts:
            out.append(_chunk_like(chunk, index, content="".join(p for p in parts if isinstance(p, str))))
        if stream.next_call == 0:
            for block in _reasoning_call_blocks(stream.reasoning_calls, self.offered, self.report):
                out.append(self._tool_call_chunk(chunk, index, stream, block))
        if choice is not None:
            before = choice.finish_reason
            choice.finish_reason = _fixed_finish_reason(before, stream.next_call > 0)
            _note_change(self.report, "finish_reason", before, choice.finish_reason)
        return out

    def _map_streamed_name(self, call: Any) -> None:
        function = getattr(call, "function", None)
        name = getattr(function, "name", None)
        if name and name not in self.offered:
            mapped = resolve_tool_name(name, self.offered)
            if mapped:
                self.report.add(f"tool name {_loggable(name)} mapped to {mapped}")
                function.name = mapped


def _chunk_like(chunk: Any, index: int, **delta: Any) -> Any:
    """A copy of ``chunk`` with one choice whose delta is ``delta`` (no finish_reason, no usage)."""
    copy = chunk.model_copy(deep=True)
    copy.choices = [choice for choice in copy.choices if getattr(choice, "index", 0) == index][:1]
    copy.choices[0].delta = type(copy.choices[0].delta)(**delta)
    copy.choices[0].finish_reason = None
    if getattr(copy, "usage", None) is not None:
        copy.usage = None
    return copy


async def repair_stream(items: AsyncIterator[Any], offered: Sequence[str]) -> AsyncIterator[Any]:
    """The repaired stream: Anthropic SSE (bytes or str) or OpenAI chunk objects; anything else untouched."""
    sse: StreamRepair | None = None
    chunks: ChunkStreamRepair | None = None
    broken = False
    async for item in items:
        if broken:
            yield item
            continue
        try:
            if isinstance(item, (bytes, str)):
                sse = sse or StreamRepair(offered, as_bytes=isinstance(item, bytes))
                sent = [out for event in parse_sse(item) for out in sse.feed(event)]
            elif hasattr(item, "choices"):
                chunks = chunks or ChunkStreamRepair(offered)
                sent = chunks.feed(item)
            else:
                sent = [item]
        except Exception as error:  # from here on the stream goes through as it came
            _log_failure("streaming repair", error)
            held = [raw for raw in (sse.abandon() if sse else []) if raw is not item]
            sent, broken = [*held, item], True
        for out in sent:
            yield out
    if broken:
        return
    for repair, where in ((sse, "/v1/messages"), (chunks, "/v1/chat/completions")):
        if repair is None:
            continue
        try:
            rest = repair.finish()
        except Exception as error:
            _log_failure("streaming repair", error)
            continue
        for out in rest:
            yield out
        if repair.report:
            logger.info("%s streaming %s: %s", LOG_PREFIX, where, repair.report.summary())


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
        async for item in repair_stream(response, offered_tool_names(request_data or {})):
            yield item


litellm_tool_fix = OSSToolCallFix()
