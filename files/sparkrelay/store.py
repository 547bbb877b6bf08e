"""Conversations on disk: one JSON file each, durable before a reply returns.

A write goes to a new file in the same directory, is fsynced, renamed over the old one and the
directory fsynced, so a kill or power loss at any point leaves the previous or the new version,
never a mix. A file that does not parse is reported as corrupt, and never overwritten or
dropped: it stays for a person to look at.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from sparkrelay.conversations import check_id, summary

# what a conversation file holds at its top level
_SHAPE = {"title": str, "caller": str, "created": str, "participants": list, "messages": list}


class NotFound(LookupError):
    pass


class Corrupt(Exception):
    """A conversation file that cannot be read; the message names the file and what is wrong."""


class ConversationStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, conversation_id: str) -> Path:
        return self.directory / f"{check_id(conversation_id)}.json"

    def load(self, conversation_id: str) -> dict[str, Any]:
        path = self.path(conversation_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(f"no conversation {conversation_id}") from None
        try:
            conversation = json.loads(text)
        except ValueError as exc:
            raise Corrupt(f"{path} is not valid JSON ({exc}); it is left as it is") from None
        if not isinstance(conversation, dict) or conversation.get("id") != conversation_id:
            raise Corrupt(f"{path} does not hold conversation {conversation_id}; it is left as it is")
        wrong = [key for key, kind in _SHAPE.items() if not isinstance(conversation.get(key), kind)]
        if wrong or not all(isinstance(item, dict) for key in ("participants", "messages")
                            for item in conversation[key]):
            raise Corrupt(f"{path} is not a conversation the relay wrote ({', '.join(wrong) or 'entries'} "
                          "malformed); it is left as it is")
        return conversation

    def save(self, conversation: dict[str, Any]) -> None:
        path = self.path(conversation["id"])
        data = json.dumps(conversation, ensure_ascii=False, indent=1).encode("utf-8")
        temporary = self.directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)  # a full disk leaves the previous version only
            raise
        self._sync_directory()

    def create(self, conversation: dict[str, Any]) -> None:
        if self.path(conversation["id"]).exists():
            raise FileExistsError(conversation["id"])
        self.save(conversation)

    def delete(self, conversation_id: str) -> None:
        try:
            self.path(conversation_id).unlink()
        except FileNotFoundError:
            raise NotFound(f"no conversation {conversation_id}") from None
        self._sync_directory()

    def summaries(self) -> list[dict[str, Any]]:
        """Every conversation, oldest first; a corrupt one listed with what is wrong."""
        listed = []
        for path in sorted(self.directory.glob("c-*.json")):
            try:
                listed.append(summary(self.load(path.stem)))
            except (Corrupt, ValueError) as exc:
                listed.append({"id": path.stem, "corrupt": str(exc)})
            except NotFound:
                continue  # deleted while listing
        return sorted(listed, key=lambda item: item.get("created", ""))

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
