"""Looking at a model as its clients and its container engine see it."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime

_FINGERPRINT_TP = re.compile(r"-tp(\d+)-")
_METRIC = re.compile(r"^(vllm:[a-z_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$")
_GENERATED = "vllm:generation_tokens_total"
_RUNNING = "vllm:num_requests_running"


@dataclass(frozen=True)
class Container:
    running: bool
    detail: str  # "running", "exited (code 1)", "absent"
    started_at: float | None = None
    image: str | None = None
    image_id: str | None = None


@dataclass(frozen=True)
class Answer:
    ok: bool
    detail: str
    seconds: float
    tensor_parallel: int | None = None
    # an HTTP 4xx: the engine answered, but refuses this request (a model name or key the
    # settings do not share with it yet, as while a deploy switches models): no wedge
    refused: bool = False


@dataclass(frozen=True)
class Metrics:
    generated: float
    running: float


def container(name: str) -> Container:
    """The container's state as ``docker inspect`` reports it."""
    result = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return Container(False, "absent")
    found = json.loads(result.stdout)[0]
    state = found["State"]
    running = bool(state.get("Running"))
    detail = "running" if running else f"{state.get('Status')} (code {state.get('ExitCode')})"
    return Container(running, detail, _timestamp(state.get("StartedAt")),
                     found["Config"].get("Image"), found.get("Image"))


def api_key(path: str | None) -> str | None:
    """VLLM_API_KEY from the compose project's secrets.env (root-only, read here, never logged)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                if line.startswith("VLLM_API_KEY="):
                    return line.strip().partition("=")[2] or None
    except FileNotFoundError:
        return None
    return None


def health(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError, http.client.HTTPException):
        return False


def completion(url: str, model: str, key: str | None, timeout: float) -> Answer:
    """A one-token chat completion, as a client asks: the only proof the engine generates."""
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1,
            "temperature": 0}
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers=_headers(key, {"Content-Type": "application/json"}))
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return Answer(False, f"HTTP {exc.code} from {url}/v1/chat/completions", time.monotonic() - start,
                      refused=400 <= exc.code < 500)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = "no reply within" if "timed out" in str(exc) else f"{exc} after"
        return Answer(False, f"{reason} {timeout:.0f} s", time.monotonic() - start)
    seconds = time.monotonic() - start
    if not reply.get("choices"):
        return Answer(False, "a reply without choices", seconds)
    match = _FINGERPRINT_TP.search(str(reply.get("system_fingerprint") or ""))
    return Answer(True, f"answered in {seconds:.2f} s", seconds, int(match[1]) if match else None)


def metrics(url: str, key: str | None, timeout: float) -> Metrics | None:
    """vLLM's generation counter and running requests from /metrics; None where it is off."""
    request = urllib.request.Request(f"{url}/metrics", headers=_headers(key, {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode(errors="replace")
    except (OSError, ValueError, http.client.HTTPException):
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line.strip())
        if match:
            values[match[1]] = values.get(match[1], 0.0) + float(match[2])
    if _GENERATED not in values:
        return None
    return Metrics(values[_GENERATED], values.get(_RUNNING, 0.0))


def memory_kib() -> dict[str, int]:
    values = {}
    with open("/proc/meminfo", encoding="utf-8") as file:
        for line in file:
            name, _, rest = line.partition(":")
            values[name] = int(rest.split()[0])
    return {"total_kib": values["MemTotal"], "available_kib": values["MemAvailable"]}


def host_uptime() -> float:
    with open("/proc/uptime", encoding="utf-8") as file:
        return float(file.read().split()[0])


def _headers(key: str | None, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Authorization": f"Bearer {key}"} if key else headers


def _timestamp(text: str | None) -> float | None:
    """Docker's RFC 3339 time with nanoseconds, as epoch seconds."""
    if not text or text.startswith("0001-"):
        return None
    head, _, fraction = text.rstrip("Z").partition(".")
    fraction = fraction.split("+")[0].split("-")[0]
    moment = datetime.fromisoformat(head + "+00:00").timestamp()
    return moment + float(f"0.{fraction}") if fraction.isdigit() else moment
