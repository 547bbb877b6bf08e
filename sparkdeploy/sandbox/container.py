"""The ``container`` sandbox backend: a systemd container under the local Docker engine.

Fast (boots in seconds) but not a whole machine: the kernel is the host's, so NFS cannot be
mounted, ``/proc/sys`` is read-only and no process may lower its OOM score (the engine itself
lacks CAP_SYS_RESOURCE here). :data:`CAPABILITIES` tells the deploy, which skips those steps
visibly. ``--privileged`` fails on this machine kind, so capabilities are added one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sparkdeploy import standins
from sparkdeploy.sandbox import registry_standin
from sparkdeploy.sandbox.engine import docker, engine_running, ensure_engine
from sparkdeploy.sandbox.image import DEPLOY_USER, ensure_image
from sparkdeploy.sandbox.local import SandboxError
from sparkdeploy.sandbox.sshkey import ensure_keypair, wait_for_ssh
from sparkdeploy.sandbox.state import (
    HOST_NAME,
    SANDBOX_DIR,
    SSH_KEY_FILE,
    SandboxState,
    sandbox_host_data,
)
from sparkdeploy.sandbox.toolkit_repo import RepoEndpoint

NAME = "container"
CONTAINER = "sparkdeploy-sandbox"
# The sandbox's own Docker data: overlay2 needs a real file system, not the container's overlay.
DOCKER_VOLUME = "sparkdeploy-sandbox-docker"
NETWORK = "sparkdeploy-sandbox"
_LABEL = "sparkdeploy.sandbox=container"
CAPABILITIES = {
    "host_can_mount_nfs": False,
    "host_can_write_sysctl": False,
    "host_can_lower_oom_score": False,
}
# SYS_ADMIN/NET_ADMIN: systemd and the inner Docker engine; SYS_PTRACE: `docker exec` into a
# container whose main process is not root (runc opens its /proc/PID/ns/*); IPC_LOCK: earlyoom's
# unit; SYS_NICE: negative Nice= in units.
_CAPS = ("SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "IPC_LOCK", "SYS_NICE")
_BOOT_TIMEOUT = 120.0
_SSH_TIMEOUT = 60.0
_BUILD_LOG = SANDBOX_DIR / "image-build.log"
_LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")


def prepare() -> str:
    """Start the engine and the sandbox's own bridge network; return the bridge's gateway
    address, where the sandbox reaches this machine."""
    ensure_engine(SANDBOX_DIR / "dockerd.log")
    if docker("network", "inspect", NETWORK, check=False).returncode != 0:
        docker("network", "create", "--label", _LABEL, NETWORK)
    gateway = docker("network", "inspect", NETWORK, "--format",
                     "{{range .IPAM.Config}}{{.Gateway}} {{end}}").stdout.split()
    if not gateway:
        raise SandboxError(f"the Docker network {NETWORK} has no gateway address")
    return gateway[0]


def up(variant: str, repo: RepoEndpoint, repo_address: str) -> SandboxState:
    image = ensure_image(variant, _BUILD_LOG)
    public_key = ensure_keypair(SSH_KEY_FILE)
    # An engine's state outlives its process: a machine whose engine stopped with a sandbox in
    # it (or a copied disk) still has that container and volume when the engine comes back.
    _remove_sandbox()
    docker("volume", "create", "--label", _LABEL, DOCKER_VOLUME)
    docker(
        "run", "--detach", "--name", CONTAINER, "--hostname", CONTAINER, "--label", _LABEL,
        "--network", NETWORK,
        *[arg for cap in _CAPS for arg in ("--cap-add", cap)],
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--volume", f"{DOCKER_VOLUME}:/var/lib/docker",
        "--stop-signal", "SIGRTMIN+3",
        "--publish", "127.0.0.1::22",
        "--add-host", f"{repo.hostname}:{repo_address}",
        image,
    )
    _wait_for_systemd()
    _trust_local_certificates()
    _trust_standin_registry()
    docker("exec", "-i", CONTAINER, "sh", "-c",
           f"cat > /home/{DEPLOY_USER}/.ssh/authorized_keys && "
           f"chown {DEPLOY_USER}: /home/{DEPLOY_USER}/.ssh/authorized_keys && "
           f"chmod 0600 /home/{DEPLOY_USER}/.ssh/authorized_keys",
           input=public_key + "\n")
    port = _ssh_port()
    wait_for_ssh("127.0.0.1", port, DEPLOY_USER, SSH_KEY_FILE, _SSH_TIMEOUT)
    return SandboxState(
        backend=NAME, variant=variant,
        hosts={HOST_NAME: sandbox_host_data(NAME, CAPABILITIES, DEPLOY_USER, port)},
        resources={"container": CONTAINER, "volume": DOCKER_VOLUME, "image": image},
    )


def is_up(state: SandboxState) -> bool:
    return _container_status() == "running"


def down(state: SandboxState | None) -> None:
    if not engine_running():
        return
    _remove_sandbox()
    docker("network", "rm", NETWORK, check=False)


def _remove_sandbox() -> None:
    docker("rm", "--force", "--volumes", CONTAINER, check=False)
    docker("volume", "rm", "--force", DOCKER_VOLUME, check=False)


def describe(state: SandboxState) -> dict[str, str]:
    status = _container_status() or "missing"
    lines = {"container": f"{CONTAINER} ({status})", "image": state.resources.get("image", "?")}
    if status == "running":
        lines["systemd"] = _systemd_state()
    return lines


def _container_status() -> str | None:
    result = docker("inspect", "--format", "{{.State.Status}}", CONTAINER, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _systemd_state() -> str:
    result = docker("exec", CONTAINER, "systemctl", "is-system-running", check=False)
    return result.stdout.strip() or "unknown"


def _wait_for_systemd() -> None:
    """Wait until systemd finished booting (``degraded`` is a finished boot with a failed unit)."""
    deadline = time.monotonic() + _BOOT_TIMEOUT
    state = "unknown"
    while time.monotonic() < deadline:
        if _container_status() != "running":
            logs = docker("logs", "--tail", "20", CONTAINER, check=False)
            raise SandboxError(f"sandbox container {CONTAINER} stopped while booting:\n"
                               f"{logs.stdout}{logs.stderr}")
        state = _systemd_state()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise SandboxError(f"systemd in {CONTAINER} did not finish booting within "
                       f"{_BOOT_TIMEOUT:.0f} s (state: {state})")


def _trust_local_certificates() -> None:
    """Give the sandbox the CA certificates added to this machine, so HTTPS through the same
    network (a TLS-inspecting egress proxy, say) works inside as it does here."""
    if not any(_LOCAL_CA_DIR.glob("*.crt")):
        return
    docker("cp", f"{_LOCAL_CA_DIR}/.", f"{CONTAINER}:{_LOCAL_CA_DIR}/")
    docker("exec", CONTAINER, "update-ca-certificates")


def _trust_standin_registry() -> None:
    """The sandbox's Docker trusts the stand-in registry's CA (per registry, no daemon restart)."""
    directory = f"/etc/docker/certs.d/{registry_standin.certs_dir_name()}"
    docker("exec", CONTAINER, "mkdir", "-p", directory)
    docker("cp", str(registry_standin.CA_CERT), f"{CONTAINER}:{directory}/ca.crt")


def install_standins(state: SandboxState, progress: Callable[[str], None]) -> None:
    standins.install_into_sandbox(state.resources["container"],
                                  state.registry_server.get("address"), progress=progress)


def _ssh_port() -> int:
    published = docker("port", CONTAINER, "22/tcp").stdout.split()
    for address in published:
        host, _, port = address.rpartition(":")
        if host == "127.0.0.1":
            return int(port)
    raise SandboxError(f"{CONTAINER} publishes no SSH port on 127.0.0.1 ({published})")
