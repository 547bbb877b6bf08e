"""One pass of the outside watcher (another inventory host's timer) over the Sparks it watches.

A Spark counts as dead only when it answers neither with an SSH banner nor on its serving
endpoint: one that still answers SSH is reachable for its own watchdog or a person, and a
power cycle would throw that away. After ``failures_before_power_cycle`` dead passes in a row the
operator's power-cycle command for that host runs (a smart plug, IPMI, anything that exits 0),
at most ``max_power_cycles`` times in ``window`` seconds, then nothing is tried until the window
passes (the alert says so, once). After a power cycle the host gets ``boot_grace`` seconds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Any

from sparkwatch import ledger, notify, probe
from sparkwatch.settings import Settings


def run_once(settings: Settings) -> None:
    if not settings.watcher.get("enabled"):
        return
    for target in settings.watcher.get("targets") or []:
        check(settings, target, time.time())


def ssh_banner(address: str, port: int, timeout: float) -> bool:
    """Whether sshd greets within ``timeout`` (an accepted connection alone proves nothing)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            return connection.recv(255).startswith(b"SSH-")
    except OSError:
        return False


def check(settings: Settings, target: dict[str, Any], now: float) -> None:
    options = settings.watcher
    name = target["host"]
    record = ledger.load(settings.state_dir, "host", name)
    if record.last_action and now - record.last_action["at"] < float(options["boot_grace"]):
        return
    timeout = float(options["timeout"])
    if ssh_banner(target["address"], int(target["ssh_port"]), timeout) or \
            (target.get("health_url") and probe.health(target["health_url"], timeout)):
        if record.failures:
            notify.journal(notify.INFO, f"{name}: answering again after {record.failures} failed check(s)")
            record.failures = 0
            ledger.save(settings.state_dir, "host", name, record)
        return
    record.failures += 1
    limit = int(options["failures_before_power_cycle"])
    endpoint = f" nor on {target['health_url']}" if target.get("health_url") else ""
    notify.journal(notify.WARNING, f"{name}: no SSH banner on {target['address']}:{target['ssh_port']}"
                                   f"{endpoint} (check {record.failures} of {limit})")
    ledger.save(settings.state_dir, "host", name, record)
    if record.failures >= limit:
        power_cycle(settings, name, record, now)


def power_cycle(settings: Settings, name: str, record: ledger.Record, now: float) -> None:
    options = settings.watcher
    window, most = float(options["window"]), int(options["max_power_cycles"])
    recent = record.recent(now, window)
    if len(recent) >= most:
        if record.alerted_at is None or now - record.alerted_at >= window:
            notify.event(settings.secrets, settings.host, "gave-up", name,
                         f"ALERT {name}: still dead after {len(recent)} power cycle(s) in the last "
                         f"{window:.0f} s (watcher_max_power_cycles {most}): not power-cycling "
                         "again; left as it is for a person", notify.ERROR)
            record.alerted_at = now
            ledger.save(settings.state_dir, "host", name, record)
        return
    command = (settings.secrets.get("power_cycle") or {}).get(name)
    env = {**os.environ, "SPARKWATCH_HOST": name}
    try:
        result = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True,
                                timeout=float(options["command_timeout"]), check=False)
        outcome = f"exit {result.returncode}"
    except subprocess.TimeoutExpired:
        result, outcome = None, f"no exit within {options['command_timeout']} s"
    ok = result is not None and result.returncode == 0
    what = (f"power-cycled with its power_cycle_command ({outcome}) after {record.failures} failed "
            "checks" if ok else f"its power_cycle_command failed ({outcome}) after {record.failures} "
            "failed checks")
    record.recoveries = [*recent, now]
    record.failures = 0
    record.last_action = {"at": now, "what": what}
    ledger.save(settings.state_dir, "host", name, record)
    notify.event(settings.secrets, settings.host, "power-cycled" if ok else "power-cycle-failed", name,
                 f"{'' if ok else 'ALERT '}{name}: {what}; power cycle {len(record.recoveries)} of at "
                 f"most {most} in {window:.0f} s", notify.WARNING if ok else notify.ERROR)
