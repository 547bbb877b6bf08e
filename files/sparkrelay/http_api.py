"""The relay's HTTP API and its MCP endpoint, behind one key.

Every path but ``/health`` needs the key (``Authorization: Bearer`` or ``x-api-key``); a refused
request is a JSON ``{"error": ...}`` with a 4xx saying what to change.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sparkrelay.relay import Relay, RelayError

OPEN_PATHS = ("/health",)


def create_app(relay: Relay, api_key: str, mcp_app: ASGIApp, lifespan: Any,
               max_body_bytes: int) -> ASGIApp:
    async def body(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            raise RelayError(413, f"request body of {declared} bytes; at most {max_body_bytes}")
        raw = await request.body()
        if len(raw) > max_body_bytes:
            raise RelayError(413, f"request body of {len(raw)} bytes; at most {max_body_bytes}")
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise RelayError(400, "the request body is not JSON") from None

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"models": await relay.served_models()})

    async def conversations(request: Request) -> JSONResponse:
        if request.method == "POST":
            return JSONResponse(await relay.create(await body(request)), status_code=201)
        return JSONResponse({"conversations": relay.list()})

    async def conversation(request: Request) -> JSONResponse:
        conversation_id = request.path_params["conversation_id"]
        if request.method == "DELETE":
            await relay.delete(conversation_id)
            return JSONResponse({"deleted": conversation_id})
        since = request.query_params.get("since", "0")
        if not (since.isascii() and since.isdigit() and len(since) <= 9):
            raise RelayError(400, "since: a message index (a whole number)")
        return JSONResponse(relay.read(conversation_id, int(since)))

    async def messages(request: Request) -> JSONResponse:
        added = await relay.say(request.path_params["conversation_id"], await body(request))
        return JSONResponse({"messages": added})

    async def rounds(request: Request) -> JSONResponse:
        added = await relay.rounds(request.path_params["conversation_id"], await body(request))
        return JSONResponse({"messages": added})

    async def fork(request: Request) -> JSONResponse:
        payload = await body(request)
        return JSONResponse(relay.fork(request.path_params["conversation_id"],
                                       payload.get("at") if isinstance(payload, dict) else None),
                            status_code=201)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RelayError)
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    one = "/v1/conversations/{conversation_id}"
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/v1/conversations", conversations, methods=["GET", "POST"]),
            Route(one, conversation, methods=["GET", "DELETE"]),
            Route(f"{one}/messages", messages, methods=["POST"]),
            Route(f"{one}/rounds", rounds, methods=["POST"]),
            Route(f"{one}/fork", fork, methods=["POST"]),
            Mount("/", app=mcp_app),
        ],
        exception_handlers={RelayError: refused},
        lifespan=lifespan,
    )
    return KeyRequired(app, api_key)


class KeyRequired:
    """Refuse any request without the relay's key (constant-time comparison)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        if len(api_key) < 16:
            raise ValueError("the relay's key must be at least 16 characters")
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope["path"] in OPEN_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"error": "a valid relay key is required (Authorization: Bearer "
                                          "<key> or x-api-key: <key>)"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})  # no other kind is served
            return
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"")
        authorization = headers.get(b"authorization", b"")
        if authorization[:7].lower() == b"bearer ":
            given = authorization[7:].strip()
        return bool(given) and hmac.compare_digest(given, self._key)
