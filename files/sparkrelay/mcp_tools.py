"""The relay as MCP tools (the official MCP SDK, streamable HTTP at ``/mcp``), for Claude Code.

Each tool is the HTTP API's operation of the same name; a refused call comes back as a tool
error with the same message.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from sparkrelay.relay import Relay, RelayError

INSTRUCTIONS = (
    "Talk with the local models this DGX Spark serves. `talk` starts a one-on-one conversation "
    "and returns the model's reply; `start_conversation` sets up several participants (each "
    "with its own system prompt and limits), `say` sends your message to one or several of them "
    "in turn, `run_rounds` lets two of them talk to each other, `read_conversation` shows the "
    "record, `delete_conversation` removes one. A reply whose finish_reason is `length` ran out "
    "of max_tokens. If a model refuses and keeps refusing, `fork_conversation` before the "
    "refusal and carry on there.")


def mcp_server(relay: Relay) -> MCPServer:
    server = MCPServer("sparkrelay", instructions=INSTRUCTIONS)

    async def call(operation, *args) -> Any:
        try:
            return await operation(*args)
        except RelayError as exc:
            raise ToolError(exc.message) from None

    async def sync(function, *args) -> Any:
        return function(*args)

    @server.tool()
    async def list_models() -> list[str]:
        """The model names this Spark's site serves."""
        return await call(relay.served_models)

    @server.tool()
    async def talk(model: str, message: str, system: str = "", max_tokens: int | None = None) -> dict:
        """Start a one-on-one conversation with a local model and return its reply."""
        participant: dict[str, Any] = {"name": model, "model": model, "system": system}
        if max_tokens is not None:
            participant["max_tokens"] = max_tokens
        conversation = await call(relay.create, {"participants": [participant], "caller": "Claude"})
        added = await call(relay.say, conversation["id"], {"content": message})
        return {"conversation_id": conversation["id"], "reply": added[-1]}

    @server.tool()
    async def start_conversation(participants: list[dict[str, Any]], title: str = "",
                                 caller: str = "Claude") -> dict:
        """Create a conversation: participants are {name, model, system?, max_tokens?,
        temperature?, top_p?}; every participant sees the whole history."""
        return await call(relay.create, {"participants": participants, "title": title, "caller": caller})

    @server.tool()
    async def say(conversation_id: str, message: str, to: list[str] | None = None) -> list[dict]:
        """Send a message to the named participants (all when omitted); each answers in turn
        and sees the replies before its own."""
        return await call(relay.say, conversation_id, {"content": message, "to": to})

    @server.tool()
    async def run_rounds(conversation_id: str, rounds: int = 1, between: list[str] | None = None,
                         opening: str | None = None) -> list[dict]:
        """Let two participants talk for a number of rounds (after an optional opening line)."""
        body: dict[str, Any] = {"rounds": rounds, "between": between}
        if opening is not None:
            body["opening"] = opening
        return await call(relay.rounds, conversation_id, body)

    @server.tool()
    async def read_conversation(conversation_id: str, since: int = 0) -> dict:
        """The conversation's participants and messages (from message index ``since``)."""
        return await call(sync, relay.read, conversation_id, since)

    @server.tool()
    async def fork_conversation(conversation_id: str, at: int) -> dict:
        """A copy with the messages before index ``at`` (to leave a refusal behind)."""
        return await call(sync, relay.fork, conversation_id, at)

    @server.tool()
    async def delete_conversation(conversation_id: str) -> str:
        """Remove a conversation and its record."""
        await call(relay.delete, conversation_id)
        return f"deleted {conversation_id}"

    return server


def mcp_app(server: MCPServer):
    """Stateless streamable HTTP with JSON replies. The relay's key guards it, so the SDK's
    Host-header check (against DNS rebinding from a browser, which cannot send the key) is off:
    clients reach the Spark by whatever name the LAN gives it."""
    return server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
