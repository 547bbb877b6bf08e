"""One watchdog pass over this host's models (the systemd timer runs it every interval).

A model counts as failed when its container runs but a one-token completion does not come back
(health may well answer 200: that is the wedge). An engine that answers with an HTTP 4xx is not
wedged: its settings and the engine disagree (as while a deploy switches models), which a
restart would not mend. A container that is not running is left to
compose's bounded restart policy and the deploy, so an operator's stop is respected. Within the
start grace a model whose /health does not answer yet is loading, not failed. Where /metrics is
on, a failed probe while the generation counter moves is a busy engine, not a wedged one.

After ``failures_before_restart`` failed passes in a row: drop the page cache, restart the
model's compose project, wait for /health. At most ``max_restarts`` in ``restart_window``
seconds; past that the model is left as it is for a person, and the alert says so, once per window.
"""

from __future__ import annotations

import subprocess
import time

from sparkwatch import ledger, notify, probe
from sparkwatch.settings import Model, Settings

DROP_CACHES = "/proc/sys/vm/drop_caches"


def run_once(settings: Settings) -> None:
    if not settings.watchdog.get("enabled"):
        return
    for model in settings.models:
        if model.role == "head":
            check(settings, model, time.time())


def check(settings: Settings, model: Model, now: float) -> None:
    options = settings.watchdog
    record = ledger.load(settings.state_dir, "model", model.name)
    box = probe.container(model.container)
    if not box.running:
        if record.reason != "down":
            notify.journal(notify.INFO, f"{model.name}: container {model.container} is {box.detail}; "
                                        "not probing (compose's restart policy and the deploy start it)")
        _save(settings, model, record, failures=0, reason="down")
        return
    key = probe.api_key(model.api_key_file)
    timeout = float(options["probe_timeout"])
    healthy = probe.health(model.url, timeout)
    if not healthy and box.started_at and now - box.started_at < float(options["start_grace"]):
        _save(settings, model, record, failures=0, reason="starting")
        return
    answer = probe.completion(model.url, model.name, key, timeout) if healthy else None
    counters = probe.metrics(model.url, key, timeout) if healthy and options.get("use_metrics") else None
    generated = counters.generated if counters else None
    if answer is not None and answer.ok:
        if record.failures:
            notify.journal(notify.INFO, f"{model.name}: answering again ({answer.detail}) after "
                                        f"{record.failures} failed probe(s)")
        _save(settings, model, record, failures=0, reason="", generated=generated)
        return
    if answer is not None and answer.refused:
        if record.reason != answer.detail:
            notify.journal(notify.WARNING, f"{model.name}: the engine answers but refuses the probe "
                                           f"({answer.detail}): its settings and the engine disagree "
                                           "(a model switch in progress?); not counted as a wedge")
        _save(settings, model, record, failures=0, reason=answer.detail, generated=generated)
        return
    if counters and record.generated is not None and counters.generated > record.generated:
        notify.journal(notify.INFO, f"{model.name}: the probe got no reply ({answer.detail}) but the "
                                    f"engine generated {counters.generated - record.generated:.0f} tokens "
                                    "since the last pass: busy, not wedged")
        _save(settings, model, record, generated=generated)
        return
    evidence = _evidence(answer, counters, record.generated)
    failures = record.failures + 1
    limit = int(options["failures_before_restart"])
    notify.journal(notify.WARNING, f"{model.name}: probe {failures} of {limit} failed: {evidence}")
    _save(settings, model, record, failures=failures, reason=evidence, generated=generated)
    if failures >= limit:
        recover(settings, model, record, evidence, now)


def recover(settings: Settings, model: Model, record: ledger.Record, evidence: str, now: float) -> None:
    options = settings.watchdog
    window, most = float(options["restart_window"]), int(options["max_restarts"])
    recent = record.recent(now, window)
    if len(recent) >= most:
        if record.alerted_at is None or now - record.alerted_at >= window:
            notify.event(settings.secrets, settings.host, "gave-up", model.name,
                         f"ALERT {model.name}: not serving ({evidence}), and already restarted "
                         f"{len(recent)} times in the last {window:.0f} s (watchdog_max_restarts "
                         f"{most}): not restarting again; left as it is for a person", notify.ERROR)
            record.alerted_at = now
            ledger.save(settings.state_dir, "model", model.name, record)
        return
    if settings.drop_page_cache:
        _drop_page_cache()
    timeout = float(options["recovery_timeout"])  # the restart and the wait for /health together
    deadline = time.monotonic() + timeout
    failure = _restart(model.compose_dir, timeout)
    seconds = None if failure else _wait_healthy(model.url, deadline, float(options["poll_interval"]))
    count = f"restart {len(recent) + 1} of at most {most} in {window:.0f} s"
    if seconds is None:
        failure = failure or f"/health did not answer within {timeout:.0f} s"
        what = f"restarted after {record.failures} failed probes ({evidence}), but {failure}"
        kind, priority, prefix = "restart-failed", notify.ERROR, "ALERT "
    else:
        what = (f"restarted after {record.failures} failed probes ({evidence}); /health answered "
                f"{seconds:.0f} s later")
        kind, priority, prefix = "restarted", notify.WARNING, ""
    record.recoveries = [*recent, now]
    record.failures = 0
    record.last_action = {"at": now, "what": what}
    ledger.save(settings.state_dir, "model", model.name, record)
    notify.event(settings.secrets, settings.host, kind, model.name,
                 f"{prefix}{model.name}: {what}; compose project {model.compose_dir}, {count}", priority)


def _evidence(answer: probe.Answer | None, counters: probe.Metrics | None, previous: float | None) -> str:
    if answer is None:
        return "/health does not answer"
    text = f"/health answers but a 1-token completion got {answer.detail}"
    if counters and counters.running and previous is not None and counters.generated <= previous:
        text += (f"; generation counter frozen at {counters.generated:.0f} with "
                 f"{counters.running:.0f} requests running")
    return text


def _save(settings: Settings, model: Model, record: ledger.Record, **changes: object) -> None:
    for name, value in changes.items():
        if name != "generated" or value is not None:
            setattr(record, name, value)
    record.checked_at = time.time()
    ledger.save(settings.state_dir, "model", model.name, record)


def _drop_page_cache() -> None:
    subprocess.run(["sync"], check=False)
    try:
        with open(DROP_CACHES, "w", encoding="ascii") as file:
            file.write("3\n")
    except OSError as exc:
        notify.journal(notify.WARNING, f"page cache not dropped before the restart: {exc}")


def _restart(compose_dir: str, timeout: float) -> str | None:
    """Restart the model's compose project; what went wrong, or None."""
    try:
        result = subprocess.run(["docker", "compose", "--project-directory", compose_dir, "restart"],
                                capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"docker compose restart did not finish within {timeout:.0f} s"
    return f"docker compose restart exited {result.returncode}" if result.returncode else None


def _wait_healthy(url: str, deadline: float, interval: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() < deadline:
        if probe.health(url, min(interval, 10.0)):
            return time.monotonic() - start
        time.sleep(interval)
    return None
