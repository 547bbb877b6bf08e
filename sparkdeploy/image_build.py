"""Running an image plan on a host: detached from the SSH session, logged, bounded, recorded.

An mxfp4 build compiles for 25-45 minutes and a prebuilt pull moves 20+ GB, so the runner
(``files/make-vllm-image``) runs in its own session with its output in a log file and its exit
code in a status file; the deploy follows those instead of holding a stream open. Docker tags
an image only when its build or pull succeeds, so a failure leaves the running image and its
services as they were. On success the runner labels the image with the plan's identity and the
digest it pulled, which is how later deploys know the image is current.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkdeploy.errors import ConfigError
from sparkdeploy.image_plan import BUILD, ImagePlan

RUNNER_PATH = "/usr/local/lib/sparkdeploy/make-vllm-image"


@dataclass(frozen=True)
class ImageJob:
    """One host's run of an image plan, and where its log, pid and status live."""

    plan: ImagePlan
    timeout: int
    log_dir: str

    @property
    def image(self) -> str:
        return self.plan.image

    @property
    def activity(self) -> str:
        return "building" if self.plan.method == BUILD and not self.plan.pin else "pulling"

    @property
    def log_file(self) -> str:
        return f"{self.log_dir}/image-{_file_safe(self.image)}.log"

    @property
    def status_file(self) -> str:
        """Holds the runner's exit code once it has finished."""
        return f"{self.log_file}.status"

    @property
    def pid_file(self) -> str:
        return f"{self.log_file}.pid"

    def runner_args(self) -> list[str]:
        """The runner's command line: pull a reference, or run upstream's script in the checkout."""
        common = [RUNNER_PATH, self.image, self.plan.label, str(self.timeout), self.status_file]
        reference = self.plan.pull_reference
        if reference:
            return [*common, "pull", reference]
        assert self.plan.checkout is not None
        return [*common, "script", self.plan.checkout.directory, "--", *self.plan.script_args()]

    def start_command(self) -> str:
        """Start the runner detached (new session, no terminal), unless one is already running."""
        log, pid, status = (shlex.quote(p) for p in (self.log_file, self.pid_file, self.status_file))
        return (
            f"if [ -f {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; then "
            f"echo 'the image runner is already running; following it'; else "
            f"rm -f {status} && "
            f"setsid nohup {shlex.join(self.runner_args())} > {log} 2>&1 < /dev/null & echo $! > {pid}; fi"
        )


def image_job(plan: ImagePlan, host_name: str, data: Mapping[str, Any]) -> ImageJob:
    """The host's job for ``plan``, with the timeout and log directory from its data."""
    timeout = data["upstream_build_timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ConfigError(f"host {host_name!r} data", "upstream_build_timeout", "must be at least 1")
    return ImageJob(plan, timeout, str(data["upstream_build_log_dir"]).rstrip("/"))


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
