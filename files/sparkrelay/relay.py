"""What the relay does, for the HTTP API and the MCP tools alike.

One exchange at a time per conversation (a lock each): the caller's message is on disk before a
model is asked, and each reply before the next participant is, so whatever happens mid-way the
record holds every turn that completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from sparkrelay import conversations as c
from sparkrelay.store import ConversationStore, Corrupt, NotFound
from sparkrelay.upstream import Upstream

log = logging.getLogger("sparkrelay")


class RelayError(Exception):
    """A refused request: the HTTP status and a message saying what to change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Relay:
    def __init__(self, store: ConversationStore, upstream: Upstream, settings: Mapping[str, Any]) -> None:
        self.store = store
        self.upstream = upstream
        self.settings = settings
        self.limits = c.Limits(max_message_chars=settings["max_message_chars"],
                               max_participants=settings["max_participants"],
                               max_tokens=settings["max_tokens"],
                               default_max_tokens=settings["default_max_tokens"])
        self._locks: dict[str, asyncio.Lock] = {}
        self._models = ModelsFile(Path(settings["models_file"]))

    async def served_models(self) -> list[str]:
        try:
            return await self.upstream.models()
        except (httpx.HTTPError, ValueError) as exc:
            raise RelayError(502, f"the model endpoint did not list its models: {exc}") from None

    async def create(self, body: Any) -> dict[str, Any]:
        body = _object(body)
        served = await self.served_models()
        conversation = _checked(c.new_conversation, body, served, self.limits,
                                {model: self.context_tokens(model) for model in served})
        self.store.create(conversation)
        log.info("conversation %s created: %s", conversation["id"],
                 ", ".join(f"{p['name']} ({p['model']})" for p in conversation["participants"]))
        return conversation

    def read(self, conversation_id: str, since: Any = 0) -> dict[str, Any]:
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise RelayError(400, "since: a message index (a whole number from 0)")
        conversation = self._load(conversation_id)
        if since:
            conversation["messages"] = conversation["messages"][since:]
        return conversation

    def list(self) -> list[dict[str, Any]]:
        return self.store.summaries()

    async def delete(self, conversation_id: str) -> None:
        """Remove a conversation, once any exchange in it has finished (it would write it back)."""
        async with self._lock(conversation_id):
            self._load(conversation_id)
            self.store.delete(conversation_id)
        self._locks.pop(conversation_id, None)
        log.info("conversation %s deleted", conversation_id)

    def fork(self, conversation_id: str, at: Any) -> dict[str, Any]:
        copy = _checked(c.forked, self._load(conversation_id), at)
        self.store.create(copy)
        log.info("conversation %s forked from %s at message %s", copy["id"], conversation_id, at)
        return copy

    async def say(self, conversation_id: str, body: Any) -> list[dict[str, Any]]:
        """The caller's ``content`` to ``to`` (a name, a list answering in turn, or everyone)."""
        body = _object(body)
        _checked(c.known_keys, body, {"content", "to"}, "a message")
        content = _checked(c.message_text, body.get("content"), self.limits)
        async with self._lock(conversation_id):
            conversation = self._load(conversation_id)
            speakers = _checked(c.recipients, conversation, body.get("to"))
            added = [self._append(conversation, {"speaker": conversation["caller"], "content": content,
                                                 "to": [s["name"] for s in speakers]})]
            for speaker in speakers:
                added.append(await self._turn(conversation, speaker))
            return added

    async def rounds(self, conversation_id: str, body: Any) -> list[dict[str, Any]]:
        """``rounds`` automatic rounds between two participants (``between``, default the first
        two), after an optional ``opening`` from the caller; stops at the first failed turn."""
        body = _object(body)
        _checked(c.known_keys, body, {"rounds", "between", "opening"}, "rounds")
        count, most = body.get("rounds", 1), self.settings["max_rounds"]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most:
            raise RelayError(400, f"rounds: a whole number from 1 to {most}")
        opening = body.get("opening")
        if opening is not None:
            opening = _checked(c.message_text, opening, self.limits)
        async with self._lock(conversation_id):
            conversation = self._load(conversation_id)
            between = body.get("between") or [p["name"] for p in conversation["participants"][:2]]
            pair = _checked(c.recipients, conversation, between)
            if len(pair) != 2:
                raise RelayError(400, "between: the names of two participants")
            added = []
            if opening is not None:
                added.append(self._append(conversation, {"speaker": conversation["caller"],
                                                         "content": opening, "to": [pair[0]["name"]]}))
            for _ in range(count):
                for speaker in pair:
                    added.append(await self._turn(conversation, speaker))
                    if added[-1].get("error"):
                        return added
            return added

    def context_tokens(self, model: str) -> int:
        """The model's context as the deploy knows it (its max_model_len), else the default."""
        return self._models.read().get(model, {}).get("context_tokens",
                                                      self.settings["default_context_tokens"])

    async def _turn(self, conversation: dict[str, Any], speaker: Mapping[str, Any]) -> dict[str, Any]:
        context = self.context_tokens(speaker["model"])
        started = time.monotonic()
        try:
            messages, trimmed = c.history_for(conversation, speaker, context)
        except c.ContextFull as exc:
            return self._append(conversation, {"speaker": speaker["name"], "content": "",
                                               "model": speaker["model"], "error": str(exc)})
        sampling = {"max_tokens": speaker["max_tokens"],
                    **{key: speaker[key] for key in c.SAMPLING if key in speaker}}
        reply = await self.upstream.complete(speaker["model"], messages, sampling)
        record: dict[str, Any] = {"speaker": speaker["name"], "content": reply.content,
                                  "model": speaker["model"], "finish_reason": reply.finish_reason,
                                  "trimmed": trimmed, "usage": reply.usage,
                                  "seconds": round(time.monotonic() - started, 3)}
        if reply.reasoning:
            record["reasoning"] = reply.reasoning
        if reply.error:
            record["error"] = reply.error
        message = self._append(conversation, record)
        log.info("conversation %s: %s answered (%s, %s s%s%s)", conversation["id"], speaker["name"],
                 reply.finish_reason or "failed", record["seconds"],
                 f", {trimmed} older messages left out" if trimmed else "",
                 f": {reply.error}" if reply.error else "")
        return message

    def _append(self, conversation: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        """Record a message and make it durable before anyone is told about it."""
        message = {"index": len(conversation["messages"]), "at": c.now(), **message}
        conversation["messages"].append(message)
        self.store.save(conversation)
        return message

    def _load(self, conversation_id: str) -> dict[str, Any]:
        try:
            return self.store.load(_checked(c.check_id, conversation_id))
        except NotFound as exc:
            raise RelayError(404, str(exc)) from None
        except Corrupt as exc:
            raise RelayError(409, str(exc)) from None

    @contextlib.asynccontextmanager
    async def _lock(self, conversation_id: str):
        """The conversation's lock, held for one exchange; kept only while the conversation
        exists (an unknown id leaves nothing behind)."""
        lock = self._locks.setdefault(_checked(c.check_id, conversation_id), asyncio.Lock())
        try:
            async with lock:
                yield
        except RelayError:
            if not self.store.path(conversation_id).exists():
                self._locks.pop(conversation_id, None)
            raise


class ModelsFile:
    """Each served model's context, re-read when the deploy replaces the file: a model's new
    max_model_len reaches the relay without restarting it (only that model restarts)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._models: dict[str, Any] = {}

    def read(self) -> dict[str, Any]:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return {}
        if self._seen != (status.st_mtime_ns, status.st_ino):
            try:
                self._models = json.loads(self.path.read_text())
            except ValueError as exc:
                log.warning("%s is not valid JSON (%s); default contexts apply", self.path, exc)
                self._models = {}
            self._seen = (status.st_mtime_ns, status.st_ino)
        return self._models


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RelayError(400, "the request body must be a JSON object")
    return body


def _checked(function, *args):
    """Call a validating function; its :class:`BadRequest` becomes a 400."""
    try:
        return function(*args)
    except c.BadRequest as exc:
        raise RelayError(400, str(exc)) from None
