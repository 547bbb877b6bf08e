"""The OpenAI-compatible endpoint the models are reached through (the site's LiteLLM proxy).

A model that errors, times out or answers nonsense gives a :class:`Reply` with ``error`` set:
the relay records a failed turn and carries on; it never raises into the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Reply:
    content: str = ""
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Upstream:
    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=httpx.Timeout(timeout, connect=10.0))

    async def models(self) -> list[str]:
        """The served model names (raises httpx errors: the caller reports them)."""
        response = await self._client.get("models", timeout=30.0)
        response.raise_for_status()
        return [item["id"] for item in response.json().get("data", []) if item.get("id")]

    async def complete(self, model: str, messages: list[dict[str, str]],
                       sampling: dict[str, Any]) -> Reply:
        body = {"model": model, "messages": messages, "stream": False, **sampling}
        try:
            response = await self._client.post("chat/completions", json=body)
        except httpx.TimeoutException:
            return Reply(error=f"{model} did not answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return Reply(error=f"{model} could not be reached: {type(exc).__name__}: {exc}")
        if response.status_code != 200:
            return Reply(error=f"{model} answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
            choice = body["choices"][0]
            message = choice["message"]
            content = message.get("content") or ""
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if not isinstance(content, str) or not isinstance(reasoning, str | None):
                raise TypeError("content is not text")
            usage = body.get("usage") or {}
            finish_reason = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Reply(error=f"{model} answered something that is not a chat completion: "
                               f"{response.text[:200]}")
        return Reply(content=content, reasoning=reasoning,
                     finish_reason=finish_reason if isinstance(finish_reason, str) else None,
                     usage=usage if isinstance(usage, dict) else {})

    async def close(self) -> None:
        await self._client.aclose()
