"""Waiting on a host while the deploy runs: a long image build or pull, a service coming up.

An mxfp4 build takes 25-45 minutes and vLLM minutes more to load, so the operator sees a
progress line every poll interval (pyinfra's logger, on stderr) instead of a silent terminal,
and a failure says what failed and where to look: the build log's path and tail, or the
container's last log lines. The loops take a ``run`` function (command -> ok, output lines), so
they are tested without a host; :func:`on_host` adapts pyinfra's host to it.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from sparkdeploy.image_build import ImageJob

Run = Callable[[str], tuple[bool, list[str]]]
# How much longer than the build's own timeout the deploy follows it (the runner's kill grace).
_FOLLOW_GRACE = 120
_FAILED_STATES = ("exited", "dead")


@dataclass(frozen=True)
class Reporter:
    """Where progress and errors go, and the clock the loops use (replaced in tests)."""

    info: Callable[[str], None]
    error: Callable[[str], None]
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def on_host(host, sudo: bool) -> Run:
    """A ``run`` function executing on a pyinfra host (during the deploy's execution)."""

    def run(command: str) -> tuple[bool, list[str]]:
        ok, output = host.run_shell_command(command, _sudo=sudo)
        return ok, list(output.stdout_lines)

    return run


def follow_image_job(run: Run, job: ImageJob, interval: float, report: Reporter) -> bool:
    """Follow a detached image job until its status file appears; True when it succeeded."""
    status, pid, log = (shlex.quote(p) for p in (job.status_file, job.pid_file, job.log_file))
    probe = (f"if [ -f {status} ]; then cat {status}; "
             f"elif [ -f {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; then echo running; "
             f"else echo vanished; fi; tail -n 1 {log} 2>/dev/null || true")
    start = report.clock()
    while True:
        _, lines = run(probe)
        state = lines[0].strip() if lines else "vanished"
        last_line = lines[1].strip() if len(lines) > 1 else ""
        elapsed = report.clock() - start
        if state not in ("running", "vanished"):
            return _job_finished(run, job, state, elapsed, report)
        if state == "vanished":
            report.error(f"{job.activity} {job.image} stopped without a result; log: {job.log_file}"
                         + _tail(run, job.log_file))
            return False
        if elapsed > job.timeout + _FOLLOW_GRACE:
            report.error(f"{job.activity} {job.image} gave no result within {job.timeout} s; "
                         f"log: {job.log_file}")
            return False
        report.info(f"{job.activity} {job.image} ({_minutes(elapsed)}): {last_line or '(no output yet)'}")
        report.sleep(interval)


def _job_finished(run: Run, job: ImageJob, state: str, elapsed: float, report: Reporter) -> bool:
    code = int(state) if state.lstrip("-").isdigit() else -1
    if code == 0:
        report.info(f"{job.image} is ready after {_minutes(elapsed)}; log: {job.log_file}")
        return True
    why = f"timed out after {job.timeout} s" if code == 124 else f"exit {code}"
    report.error(f"{job.activity} {job.image} failed ({why}); the running image and services are "
                 f"untouched; log: {job.log_file}" + _tail(run, job.log_file))
    return False


def wait_until_up(run: Run, what: str, url: str, container: str, timeout: float, interval: float,
                  log_lines: int, report: Reporter) -> bool:
    """Poll ``url`` until it answers 2xx; on timeout or a stopped container show its last logs."""
    probe = f"curl -fsS -o /dev/null --max-time 10 {shlex.quote(url)}"
    state_probe = f"docker container inspect --format '{{{{.State.Status}}}}' {shlex.quote(container)}"
    start = report.clock()
    while True:
        ok, _ = run(probe)
        elapsed = report.clock() - start
        if ok:
            report.info(f"{what} is up ({url}) after {_minutes(elapsed)}")
            return True
        _, state_lines = run(state_probe)
        state = state_lines[0].strip() if state_lines else "missing"
        if state in _FAILED_STATES or state == "missing" or elapsed > timeout:
            why = (f"did not answer within {timeout:.0f} s" if elapsed > timeout
                   else f"its container {container} is {state}")
            report.error(f"{what} is not up: {url} {why}. Last {log_lines} lines of "
                         f"`docker logs {container}`:" + _container_logs(run, container, log_lines))
            return False
        report.info(f"waiting for {what} ({_minutes(elapsed)}, container {state})")
        report.sleep(interval)


def rank_stays_up(run: Run, container: str, seconds: float, log_lines: int, report: Reporter) -> bool:
    """A headless rank has no endpoint: after the head is up it must keep running ``seconds``
    (a rank whose peers are gone exits, as NCCL ranks do)."""
    probe = f"docker container inspect --format '{{{{.State.Status}}}}' {shlex.quote(container)}"
    start = report.clock()
    while True:
        _, lines = run(probe)
        state = lines[0].strip() if lines else "missing"
        if state != "running":
            report.error(f"worker rank {container} is {state}. Last {log_lines} lines of "
                         f"`docker logs {container}`:" + _container_logs(run, container, log_lines))
            return False
        if report.clock() - start >= seconds:
            report.info(f"worker rank {container} is running and joined")
            return True
        report.sleep(2.0)


def _tail(run: Run, path: str, lines: int = 15) -> str:
    _, output = run(f"tail -n {lines} {shlex.quote(path)} 2>/dev/null || true")
    return "".join(f"\n    {line}" for line in output)


def _container_logs(run: Run, container: str, lines: int) -> str:
    _, output = run(f"docker logs --tail {int(lines)} {shlex.quote(container)} 2>&1 || true")
    return "".join(f"\n    {line}" for line in output) or "\n    (no logs)"


def _minutes(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
