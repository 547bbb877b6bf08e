"""Endpoint validation: does each served model do tool calls, directly and through the proxy?

Per model on vLLM, the seed's four-step check: ``/v1/models`` lists the served name; a forced
tool call ends with ``finish_reason: tool_calls``; its arguments parse as JSON; a second turn
carrying a ``role: tool`` result ends with ``stop``. Through each proxy, per model of its site,
what Claude Code depends on: ``/v1/messages`` with a tool returns a ``tool_use`` block and
``stop_reason: tool_use``, streaming and not. Through each relay: no answer without its key, and
one relayed turn to the site's first model. Every check yields a result, failing ones say why,
and the server's ``system_fingerprint`` is kept so a report shows which build answered.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sparkdeploy.proxy import site_models
from sparkdeploy.relay import relay_url
from sparkdeploy.vllm_service import VllmService, local_address

TOOL_NAME = "get_weather"
_PROMPT = f"Use the {TOOL_NAME} tool to look up the weather in Paris."
_TOOL_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
_OPENAI_TOOLS = [{"type": "function", "function": {
    "name": TOOL_NAME, "description": "Current weather for a city.", "parameters": _TOOL_PARAMETERS}}]
_ANTHROPIC_TOOLS = [{"name": TOOL_NAME, "description": "Current weather for a city.",
                     "input_schema": _TOOL_PARAMETERS}]
_ANTHROPIC_VERSION = "2023-06-01"
_MAX_TOKENS = 512


@dataclass(frozen=True)
class CheckResult:
    """One row of the report."""

    endpoint: str
    model: str
    check: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Target:
    """An endpoint to check: a host's vLLM or proxy, where it listens and the models it serves.

    ``host_port`` is where the service listens as seen from the host itself (for an SSH tunnel);
    ``url`` is how this machine reaches it directly.
    """

    kind: str
    host_name: str
    url: str
    host_port: tuple[str, int]
    models: tuple[str, ...]
    # vllm: the tensor-parallel size the server must report; rank: the worker's container
    tensor_parallel: int = 1
    container: str = ""
    # which of the host's models (empty: its recipe)
    model_name: str = ""

    @property
    def endpoint(self) -> str:
        return f"{self.kind} {self.host_name}" + (f" {self.model_name}" if self.model_name else "")


def plan_targets(selected: list[str], hosts_data: Mapping[str, Mapping[str, Any]],
                 services: Mapping[str, tuple[VllmService, ...]]) -> list[Target]:
    """The vLLM and proxy endpoints of the selected hosts, with the models each must serve."""
    targets = []
    for host_name in selected:
        data = hosts_data[host_name]
        for service in services.get(host_name, ()):
            if not service.serves_http:
                targets.append(Target("rank", host_name, "", ("", 0), (service.served_name,),
                                      container=service.container_name))
                continue
            address = data.get("vllm_address") or host_name
            url = f"http://{address}:{service.port}"
            if not service.model_name:  # verify_vllm_url names where the recipe's model answers
                url = data.get("verify_vllm_url") or url
            local = local_address(service.bind_address)
            nodes = len(service.cluster.nodes) if service.cluster else 1
            targets.append(Target("vllm", host_name, url.rstrip("/"), (local, service.port),
                                  (service.served_name,), tensor_parallel=nodes,
                                  model_name=service.model_name))
        if data.get("proxy_enabled"):
            port = int(data["proxy_port"])
            local = local_address(data["proxy_bind_address"])
            url = data.get("proxy_client_url") or f"http://{host_name}:{port}"
            models = tuple(entry["model_name"] for entry in site_models(host_name, hosts_data, services))
            targets.append(Target("proxy", host_name, url.rstrip("/"), (local, port), models))
            if data.get("relay_enabled") and models:
                port = int(data["relay_port"])
                targets.append(Target("relay", host_name, relay_url(host_name, data),
                                      (local_address(data["relay_bind_address"]), port), models[:1]))
    return targets


class CheckFailed(Exception):
    """A check's expectation was not met; the message says what came back instead."""


def check_vllm(client: httpx.Client, endpoint: str, model: str,
               fingerprints: set[str]) -> list[CheckResult]:
    """The four direct checks against one vLLM (``client`` has its base URL and auth)."""
    results = []
    state: dict[str, Any] = {}

    def listed() -> str:
        body = _json(client.get("/v1/models"))
        served = [entry.get("id") for entry in body.get("data") or []]
        if model not in served:
            raise CheckFailed(f"served models are {served}")
        return f"served models: {', '.join(map(str, served))}"

    def forced_call() -> str:
        messages = [{"role": "user", "content": _PROMPT}]
        body = _chat(client, model, messages, fingerprints,
                     tool_choice={"type": "function", "function": {"name": TOOL_NAME}})
        choice = body["choices"][0]
        calls = choice["message"].get("tool_calls") or []
        if choice.get("finish_reason") != "tool_calls" or not calls:
            raise CheckFailed(f"finish_reason {choice.get('finish_reason')!r}, {len(calls)} tool calls, "
                              f"content {_clip(choice['message'].get('content'))}")
        state.update(messages=messages, message=choice["message"], call=calls[0])
        return f"{calls[0]['function']['name']}(…), finish_reason tool_calls"

    def arguments_json() -> str:
        call = _needs(state, "call")
        try:
            arguments = json.loads(call["function"]["arguments"])
        except (TypeError, ValueError) as exc:
            raise CheckFailed(f"arguments {_clip(call['function'].get('arguments'))} are not JSON: "
                              f"{exc}") from exc
        if not isinstance(arguments, dict):
            raise CheckFailed(f"arguments are a JSON {type(arguments).__name__}, not an object")
        state["arguments"] = arguments
        return _clip(json.dumps(arguments))

    def round_trip() -> str:
        call = _needs(state, "call")
        assistant = {"role": "assistant", "content": state["message"].get("content"),
                     "tool_calls": [{"id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"],
                                                  "arguments": call["function"]["arguments"]}}]}
        result = {"role": "tool", "tool_call_id": call["id"],
                  "content": json.dumps({"city": "Paris", "forecast": "sunny", "celsius": 21})}
        body = _chat(client, model, [*state["messages"], assistant, result], fingerprints)
        choice = body["choices"][0]
        if choice.get("finish_reason") != "stop":
            raise CheckFailed(f"finish_reason {choice.get('finish_reason')!r} after the tool result")
        return f"finish_reason stop: {_clip(choice['message'].get('content'))}"

    for name, check in (("/v1/models lists the served name", listed),
                        ("forced tool call ends with tool_calls", forced_call),
                        ("tool call arguments are JSON", arguments_json),
                        ("role: tool round trip ends with stop", round_trip)):
        results.append(_run(endpoint, model, name, check))
    return results


def check_tensor_parallel(endpoint: str, model: str, size: int, fingerprints: set[str]) -> CheckResult:
    """A cluster's head must report its tensor-parallel size: vLLM's ``system_fingerprint``
    carries ``-tp<N>-`` when N > 1, and the engine cannot start at tp N without every rank."""

    def reported() -> str:
        if not fingerprints:
            raise CheckFailed("the server reported no system_fingerprint (a vLLM before PR 40537 "
                              "cannot show its tensor-parallel size)")
        if not any(f"-tp{size}-" in fingerprint for fingerprint in fingerprints):
            raise CheckFailed(f"system_fingerprint {', '.join(sorted(fingerprints))} has no -tp{size}-")
        return f"tensor parallel {size}: {', '.join(sorted(fingerprints))}"

    return _run(endpoint, model, f"serves tensor parallel {size} across the cluster", reported)


def check_rank(run: Callable[[str], tuple[int, str]], endpoint: str, model: str,
               container: str) -> CheckResult:
    """A headless worker rank: its container runs (a rank exits when a peer dies)."""

    def running() -> str:
        status, output = run("docker container inspect --format "
                             f"'{{{{.State.Status}}}} {{{{.RestartCount}}}}' {shlex.quote(container)}")
        state = output.split()
        if status != 0 or not state:
            raise CheckFailed(f"no container {container}: {output.strip()[:120]}")
        if state[0] != "running":
            raise CheckFailed(f"container {container} is {state[0]}")
        return f"container {container} running (restarts: {state[1] if len(state) > 1 else '?'})"

    return _run(endpoint, model, "worker rank runs", running)


def check_proxy(client: httpx.Client, endpoint: str, model: str) -> list[CheckResult]:
    """``/v1/messages`` with a tool through the proxy, non-streaming and streaming."""

    def messages() -> str:
        body = _json(client.post("/v1/messages", json=_messages_request(model, stream=False)))
        blocks = body.get("content") or []
        tool_uses = [block for block in blocks if block.get("type") == "tool_use"]
        if not tool_uses or body.get("stop_reason") != "tool_use":
            raise CheckFailed(f"stop_reason {body.get('stop_reason')!r}, blocks "
                              f"{[block.get('type') for block in blocks]}")
        return f"tool_use {tool_uses[0].get('name')} {_clip(json.dumps(tool_uses[0].get('input')))}"

    def streamed() -> str:
        tool_uses, stop_reason, kinds = [], None, []
        with client.stream("POST", "/v1/messages", json=_messages_request(model, stream=True)) as response:
            _raise_for_status(response)
            for event in _sse_events(response.iter_lines()):
                kinds.append(event.get("type"))
                block = event.get("content_block") or {}
                if event.get("type") == "content_block_start" and block.get("type") == "tool_use":
                    tool_uses.append(block.get("name"))
                if event.get("type") == "message_delta":
                    stop_reason = (event.get("delta") or {}).get("stop_reason")
        if not tool_uses or stop_reason != "tool_use":
            raise CheckFailed(f"stop_reason {stop_reason!r}, tool_use blocks {tool_uses}, "
                              f"{len(kinds)} events")
        return f"tool_use {tool_uses[0]}, stop_reason tool_use ({len(kinds)} events)"

    return [_run(endpoint, model, "/v1/messages tool_use, not streaming", messages),
            _run(endpoint, model, "/v1/messages tool_use, streaming", streamed)]


def check_relay(client: httpx.Client, endpoint: str, model: str) -> list[CheckResult]:
    """The relay refuses a request without its key, and relays one turn to a local model."""

    def refused() -> str:
        response = httpx.get(client.base_url.join("/v1/conversations"), timeout=client.timeout)
        if response.status_code != 401:
            raise CheckFailed(f"HTTP {response.status_code} without the key, not 401")
        return "401 without the key"

    def round_trip() -> str:
        created = _json(client.post("/v1/conversations", json={
            "title": "sparkdeploy verify", "participants": [{"name": "local", "model": model,
                                                             "max_tokens": _MAX_TOKENS}]}))
        try:
            added = _json(client.post(f"/v1/conversations/{created['id']}/messages",
                                      json={"content": "Say hello in one short sentence."}))["messages"]
        finally:
            client.delete(f"/v1/conversations/{created['id']}")
        reply = added[-1]
        if reply.get("error") or not reply.get("finish_reason"):
            raise CheckFailed(f"the turn failed: {reply.get('error') or 'no finish_reason'}")
        length = len(reply.get("content") or "")
        return f"reply of {length} characters, finish_reason {reply['finish_reason']}"

    return [_run(endpoint, model, "refuses a request without the key", refused),
            _run(endpoint, model, "relayed turn (create, say, delete)", round_trip)]


def format_table(results: list[CheckResult]) -> str:
    """A fixed-width PASS/FAIL table, one row per check."""
    headers = ("RESULT", "ENDPOINT", "MODEL", "CHECK", "DETAIL")
    rows = [("PASS" if r.passed else "FAIL", r.endpoint, r.model, r.check, r.detail) for r in results]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(4)]
    lines = []
    for row in [headers, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
                     + "  " + row[4])
    return "\n".join(lines)


def _run(endpoint: str, model: str, name: str, check: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(endpoint, model, name, True, check())
    except CheckFailed as exc:
        return CheckResult(endpoint, model, name, False, str(exc))
    except httpx.HTTPError as exc:
        return CheckResult(endpoint, model, name, False, f"{type(exc).__name__}: {exc}")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return CheckResult(endpoint, model, name, False, f"unexpected response shape: {exc!r}")


def _chat(client: httpx.Client, model: str, messages: list[dict[str, Any]], fingerprints: set[str],
          **extra: Any) -> dict[str, Any]:
    body = _json(client.post("/v1/chat/completions", json={
        "model": model, "messages": messages, "tools": _OPENAI_TOOLS, "max_tokens": _MAX_TOKENS,
        "temperature": 0, **extra}))
    if body.get("system_fingerprint"):
        fingerprints.add(str(body["system_fingerprint"]))
    return body


def _messages_request(model: str, stream: bool) -> dict[str, Any]:
    return {"model": model, "max_tokens": _MAX_TOKENS, "stream": stream, "tools": _ANTHROPIC_TOOLS,
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
            "messages": [{"role": "user", "content": _PROMPT}]}


def _needs(state: dict[str, Any], key: str) -> Any:
    if key not in state:
        raise CheckFailed("skipped: the forced tool call failed")
    return state[key]


def _json(response: httpx.Response) -> dict[str, Any]:
    _raise_for_status(response)
    body = response.json()
    if not isinstance(body, dict):
        raise CheckFailed(f"expected a JSON object, got {_clip(response.text)}")
    return body


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        response.read()
        raise CheckFailed(f"HTTP {response.status_code} from {response.request.url.path}: "
                          f"{_clip(response.text)}")


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON ``data:`` payloads of a server-sent event stream."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == "[DONE]":
            continue
        try:
            event = json.loads(payload)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


def _clip(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
