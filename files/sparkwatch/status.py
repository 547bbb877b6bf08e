"""This host's models as ``sparkdeploy status`` shows them: one JSON document, one SSH round trip.

States: ``serving`` (a one-token completion came back), ``wedged`` (/health answers, completions
do not), ``starting`` (/health not yet, within the start grace), ``down`` (container not running,
or /health silent past the grace), ``error`` (the engine answers the probe with an HTTP 4xx:
a model name or key it does not share with these settings), ``worker`` (a cluster's worker
rank, running; never probed).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sparkwatch import ledger, probe
from sparkwatch.settings import Model, Settings


def collect(settings: Settings) -> dict[str, Any]:
    with ThreadPoolExecutor(max_workers=max(1, len(settings.models))) as pool:
        models = list(pool.map(lambda model: model_state(settings, model), settings.models))
    return {
        "host": settings.host,
        "collected_at": time.time(),
        "host_uptime_s": probe.host_uptime(),
        "memory": probe.memory_kib(),
        "watchdog": {"enabled": bool(settings.watchdog.get("enabled")),
                     "interval_s": settings.watchdog.get("interval")},
        "models": models,
    }


def model_state(settings: Settings, model: Model) -> dict[str, Any]:
    now = time.time()
    box = probe.container(model.container)
    state, detail, tensor_parallel = _classify(settings, model, box, now)
    record = ledger.load(settings.state_dir, "model", model.name)
    return {
        "name": model.name, "recipe": model.recipe, "role": model.role,
        "state": state, "detail": detail,
        "container": model.container, "image": box.image, "image_id": box.image_id,
        "container_uptime_s": now - box.started_at if box.running and box.started_at else None,
        "tensor_parallel": tensor_parallel or model.tensor_parallel,
        "last_action": record.last_action,
    }


def _classify(settings: Settings, model: Model, box: probe.Container,
              now: float) -> tuple[str, str, int | None]:
    if not box.running:
        return "down", f"container {model.container} {box.detail}", None
    if model.role != "head":
        return "worker", "worker rank running (the head's probe covers the cluster)", None
    timeout = float(settings.watchdog.get("probe_timeout", 10))
    if not probe.health(model.url, timeout):
        grace = float(settings.watchdog.get("start_grace", 0))
        if box.started_at and now - box.started_at < grace:
            return "starting", f"/health not answering yet ({now - box.started_at:.0f} s since start)", None
        return "down", f"/health not answering at {model.url}", None
    answer = probe.completion(model.url, model.name, probe.api_key(model.api_key_file), timeout)
    if answer.refused:
        return "error", f"the engine refuses the probe: {answer.detail}", None
    if not answer.ok:
        return "wedged", f"/health answers but a 1-token completion got {answer.detail}", None
    return "serving", answer.detail, answer.tensor_parallel
