"""pyinfra operations that bring a model's weights to a host, or refuse to start without them.

Like pyinfra's own operations they read the :class:`~sparkdeploy.facts.HubSnapshot` fact at
prepare and again at execution, and yield commands only while the snapshot is incomplete: a
converged host runs nothing and reports no change. The download itself runs detached on the host
(``files/fetch_weights.py``); the operation starts it and then follows its status file, relaying
a progress line to the operator (pyinfra's logger, stderr) until it is done, failed or timed out.
"""

from __future__ import annotations

import shlex
import uuid
from typing import Any

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, StringCommand, operation

from sparkdeploy.facts import HubSnapshot
from sparkdeploy.waits import Reporter, Run, on_host
from sparkdeploy.weights import (
    ACTIVE_STATES,
    FAILED_STATES,
    WeightsPlan,
    check_snapshot,
    parse_status,
    progress_line,
)

# How often the status file is read, and how long a fresh start may take to write it.
_POLL_SECONDS = 5.0
_START_GRACE_SECONDS = 60.0
# How much longer than the download's own timeout the deploy follows it.
_FOLLOW_GRACE_SECONDS = 120.0


@operation()
def hub_snapshot(plan: WeightsPlan):
    """
    Fetch a model revision into the host's Hugging Face cache unless it is complete there.

    + plan: the host's :class:`~sparkdeploy.weights.WeightsPlan` (repository, revision, cache,
      service user, timeout, tool paths)

    The download runs as the service user, detached from the SSH session, with the token (if
    any) read by the hub client from ``$HF_HOME/token``. A download already running on the host
    is followed instead of started twice.

    **Example:**

    .. code:: python

        hub_snapshot(name="Fetch the openai/gpt-oss-120b weights", plan=plan)
    """
    listing = host.get_fact(HubSnapshot, cache_dir=plan.cache_dir, repo_id=plan.repo_id,
                            revision=plan.revision)
    verdict = check_snapshot(listing, plan)
    if verdict.complete:
        host.noop(f"{plan.label} is complete in {plan.cache_dir}")
        return
    run_id = uuid.uuid4().hex[:12]
    yield StringCommand(*fetch_command(plan, run_id), _sudo=True, _sudo_user=plan.user)
    yield FunctionCommand(_follow_on_host, (plan, run_id), {})


def fetch_command(plan: WeightsPlan, run_id: str) -> list[str]:
    """The command that starts the detached download (no secret in it: the token is a file)."""
    env = [f"HF_HOME={plan.hf_home}"] + ([f"HF_ENDPOINT={plan.endpoint}"] if plan.endpoint else [])
    args = ["--repo", plan.repo_id, "--cache-dir", plan.cache_dir, "--run-dir", plan.run_dir,
            "--timeout", str(plan.timeout), "--run-id", run_id]
    if plan.revision:
        args += ["--revision", plan.revision]
    if plan.weight_limit is not None:
        args += ["--max-weight-bytes", str(plan.weight_limit.bytes),
                 "--limit-reason", plan.weight_limit.reason]
    return [shlex.quote(part) for part in
            ["env", *env, f"{plan.venv_dir}/bin/python", plan.script_path, "start", *args]]


@operation()
def snapshot_readable(plan: WeightsPlan, expect_nfs: bool = True):
    """
    Refuse to go on unless the model's snapshot is complete and readable in the model store.

    + plan: the host's :class:`~sparkdeploy.weights.WeightsPlan` with ``store == "nfs"``
    + expect_nfs: the store should be an NFS mount (adds a hint when it is not)

    Nothing is changed: a readable snapshot yields nothing; otherwise the operation fails the
    host with the reason, so the later steps (vLLM's start) do not run for it.

    **Example:**

    .. code:: python

        snapshot_readable(name="Check the weights on the NFS model store", plan=plan)
    """
    listing = host.get_fact(HubSnapshot, cache_dir=plan.cache_dir, repo_id=plan.repo_id,
                            revision=plan.revision)
    verdict = check_snapshot(listing, plan, expect_nfs=expect_nfs)
    if verdict.complete:
        host.noop(f"{plan.label} is readable in {plan.cache_dir} ({verdict.reason})")
        return
    yield FunctionCommand(_refuse, (f"the weights of {plan.label} are not usable: {verdict.reason}; "
                                    "vLLM is not started",), {})


# pyinfra passes ``state`` and ``host`` to a FunctionCommand's function when it names them so.
def _refuse(state: Any, host: Any, message: str) -> bool:
    logger.error(f"{host.print_prefix}{message}")
    return False


def _follow_on_host(state: Any, host: Any, plan: WeightsPlan, run_id: str) -> bool:
    prefix = host.print_prefix
    report = Reporter(info=lambda text: logger.info(prefix + text),
                      error=lambda text: logger.error(prefix + text))
    return follow_fetch(on_host(host, sudo=True), plan, run_id, report)


def follow_fetch(run: Run, plan: WeightsPlan, run_id: str, report: Reporter,
                 poll: float = _POLL_SECONDS) -> bool:
    """Follow the download through its status file until it ends; True when complete.

    A status written by another run that is still active (a download a dropped session left
    running) is followed as well; a stale one from an earlier run is ignored.
    """
    status_path = f"{plan.run_dir}/status.json"
    log_path = f"{plan.run_dir}/fetch.log"
    start = report.clock()
    followed: str | None = None
    last_report = -float(plan.progress_interval)
    while True:
        now = report.clock() - start
        status = _read_status(run, status_path)
        if status is not None and status.get("run_id") == run_id:
            followed = run_id
        elif (status is not None and followed is None and status.get("state") in ACTIVE_STATES
              and _alive(run, status.get("pid"))):
            followed = str(status.get("run_id"))
            report.info(f"following a download already running on the host (pid {status.get('pid')})")
        if followed is None or status is None or status.get("run_id") != followed:
            if now > _START_GRACE_SECONDS:
                report.error(f"the download of {plan.repo_id} did not start; log: {log_path}"
                             + _tail(run, log_path))
                return False
            report.sleep(min(poll, 1.0))
            continue
        if status.get("repo") != plan.repo_id or status.get("revision") != plan.revision:
            report.error(f"another download ({status.get('repo')}) is running on the host; wait "
                         f"for it or stop it (pid {status.get('pid')}), then deploy again")
            return False
        state = status.get("state")
        if state == "done":
            report.info(f"{plan.label} complete: {status.get('message', '')}")
            return True
        if state in FAILED_STATES:
            report.error(f"{status.get('message') or state}; log: {log_path}" + _tail(run, log_path))
            return False
        if not _alive(run, status.get("pid")):
            report.error(f"the download of {plan.repo_id} stopped without a result; log: {log_path}"
                         + _tail(run, log_path))
            return False
        if now > plan.timeout + _FOLLOW_GRACE_SECONDS:
            report.error(f"the download of {plan.repo_id} gave no result within {plan.timeout} s; "
                         f"log: {log_path}")
            return False
        if now - last_report >= plan.progress_interval:
            report.info(progress_line(status))
            last_report = now
        report.sleep(poll)


def _read_status(run: Run, path: str) -> dict[str, Any] | None:
    ok, lines = run(f"cat {shlex.quote(path)} 2>/dev/null")
    return parse_status("\n".join(lines)) if ok else None


def _alive(run: Run, pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    ok, _ = run(f"test -d /proc/{pid}")
    return ok


def _tail(run: Run, path: str, lines: int = 5) -> str:
    ok, output = run(f"tail -n {lines} {shlex.quote(path)} 2>/dev/null")
    return "".join(f"\n  {line}" for line in output) if ok and output else ""

