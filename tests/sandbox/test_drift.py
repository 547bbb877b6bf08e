"""Injected drift is detected (exit 2, naming host and operation) and the next deploy repairs it.

Each case is one :class:`Drift`: a root shell command that changes the converged sandbox behind
the deploy's back, and the operation the drift check must name. Commands and operation labels
are ``str.format`` templates over the sandbox host's inventory data (``{vllm_compose_dir}``,
``{home}`` for the service user's home, ...). Some operations exist only when there is something
to change (the sshd install runs when the live drop-in differs), so a converged plan need not
list them: every case runs. Cases are injected in batches, each batch detected by one drift
check and repaired by one deploy, so a new case costs seconds, not three runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sparkdeploy.data import service_home
from sparkdeploy.drift import EXIT_CLEAN, EXIT_DRIFT
from sparkdeploy.sandbox.state import HOST_NAME


@dataclass(frozen=True)
class Drift:
    name: str
    # shell command run as root on the sandbox
    inject: str
    # (part of) the label of the operation the drift check must report
    operation: str

    def render(self, data: dict[str, Any]) -> tuple[str, str]:
        values = {**data, "home": service_home(data)}
        return self.inject.format(**values), self.operation.format(**values)


DRIFTS = [
    Drift("compose-file-edited",
          "echo '# edited by hand' >> {vllm_compose_dir}/compose.yaml",
          "Place {vllm_compose_dir}/compose.yaml"),
    Drift("proxy-secrets-readable",
          "chmod 0644 {proxy_compose_dir}/secrets.env",
          "Place {proxy_compose_dir}/secrets.env"),
    Drift("sshd-dropin-edited",
          "echo 'X11Forwarding yes' >> /etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf",
          "Check the staged settings with sshd -t and install them"),
    Drift("sshd-dropin-mode-changed",
          "chmod 0644 /etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf",
          "Check the staged settings with sshd -t and install them"),
    Drift("sshd-oom-dropin-removed",
          "rm /etc/systemd/system/ssh.service.d/10-sparkdeploy-oom.conf",
          "Keep sshd out of the OOM killer's reach"),
    Drift("earlyoom-args-changed",
          "sed -i 's/^EARLYOOM_ARGS=.*/EARLYOOM_ARGS=\"-r 60\"/' /etc/default/earlyoom",
          "Tell earlyoom what to spare and what to kill first"),
    Drift("earlyoom-stopped",
          "systemctl disable --now earlyoom.service",
          "Keep earlyoom enabled and running"),
    Drift("drop-caches-cron-removed",
          "rm /etc/cron.d/drop-caches",
          "Drop the page cache on a schedule"),
    Drift("daemon-json-lost-nvidia-runtime",
          "echo '{{}}' > /etc/docker/daemon.json",
          "Register the NVIDIA runtime in daemon.json"),
    Drift("fstab-entry-removed",
          "sed -i '\\#/mnt/models#d' /etc/fstab",
          "at boot (fstab)"),
    Drift("fstab-option-changed",
          "sed -i '\\#/mnt/models# s#noatime#atime#' /etc/fstab",
          "at boot (fstab)"),
    Drift("cache-dir-removed",
          "rm -rf {home}/.cache/vllm",
          "Keep {home}/.cache/vllm for {service_user}"),
    Drift("cache-dir-wrong-owner",
          "chown root:root {home}/.triton",
          "Keep {home}/.triton for {service_user}"),
    Drift("watchdog-setting-edited",
          "sed -i 's/\"failures_before_restart\": [0-9]*/\"failures_before_restart\": 99/' "
          "/etc/sparkdeploy/watch/config.json",
          "Place /etc/sparkdeploy/watch/config.json"),
    Drift("relay-setting-edited",
          "sed -i 's/\"max_rounds\": [0-9]*/\"max_rounds\": 99/' {relay_compose_dir}/relay.json",
          "Place {relay_compose_dir}/relay.json"),
    Drift("toolkit-removed",
          "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q nvidia-container-toolkit",
          "Install NVIDIA Container Toolkit"),
]


# Drifts that touch the same thing as an earlier one (the same file, the same fstab line) go in
# a later batch; each batch is injected at once, detected by one check and repaired by one deploy.
LATER = {"sshd-dropin-mode-changed", "fstab-option-changed"}
BATCHES = {"first": [drift for drift in DRIFTS if drift.name not in LATER],
           "later": [drift for drift in DRIFTS if drift.name in LATER]}


@pytest.mark.parametrize("batch", BATCHES, ids=str)
def test_drift_is_detected_and_repaired(batch, converged, sandbox_data, on_sandbox, drift_check, deploy):
    drifts = {drift.name: drift.render(sandbox_data) for drift in BATCHES[batch]}
    for inject, _ in drifts.values():
        on_sandbox(inject)
    detected = drift_check()
    assert detected.returncode == EXIT_DRIFT, detected.stdout + detected.stderr
    report = detected.stdout
    assert f"{HOST_NAME}:" in report, report
    missed = [name for name, (_, operation) in drifts.items() if operation not in report]
    assert not missed, f"not reported: {missed}\n{report}"

    repair = deploy()
    assert repair.returncode == 0, repair.failure_summary()
    changed = repair.changes.get(HOST_NAME, [])
    unrepaired = [name for name, (_, operation) in drifts.items()
                  if not any(operation in label for label in changed)]
    assert not unrepaired, f"not repaired: {unrepaired}\n{changed}"

    after = drift_check()
    assert after.returncode == EXIT_CLEAN, after.stdout + after.stderr
