"""The ``container`` sandbox backend: a systemd container under the local Docker engine.

Fast (boots in seconds) but not a whole machine: the kernel is the host's, so NFS cannot be
mounted, ``/proc/sys`` is read-only and no process may lower its OOM score (the engine itself
lacks CAP_SYS_RESOURCE here). :data:`CAPABILITIES` tells the deploy, which skips those steps
visibly. ``--privileged`` fails on this machine kind, so capabilities are added one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparkdeploy import standins
from sparkdeploy.sandbox import links, registry_standin
from sparkdeploy.sandbox.engine import docker, engine_running, ensure_engine
from sparkdeploy.sandbox.image import DEPLOY_USER, ensure_image
from sparkdeploy.sandbox.local import SandboxError
from sparkdeploy.sandbox.sshkey import ensure_keypair, wait_for_ssh
from sparkdeploy.sandbox.state import (
    HOST_NAME,
    SANDBOX_DIR,
    SSH_KEY_FILE,
    SandboxState,
    node_names,
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


@dataclass(frozen=True)
class _Node:
    """One sandbox host: its inventory name, its container and its inner engine's volume."""

    host: str
    container: str
    volume: str


def _nodes(count: int) -> list[_Node]:
    """One sandbox keeps today's names; a cluster's follow its inventory names."""
    if count == 1:
        return [_Node(HOST_NAME, CONTAINER, DOCKER_VOLUME)]
    return [_Node(name, f"{CONTAINER}{name[len(HOST_NAME):]}", f"{DOCKER_VOLUME}{name[len(HOST_NAME):]}")
            for name in node_names(count)]


def up(variant: str, repo: RepoEndpoint, repo_address: str, nodes: int = 1) -> SandboxState:
    """Start ``nodes`` sandbox hosts; more than one are cabled like Sparks (:mod:`.links`)."""
    image = ensure_image(variant, _BUILD_LOG)
    public_key = ensure_keypair(SSH_KEY_FILE)
    members = _nodes(nodes)
    # An engine's state outlives its process: a machine whose engine stopped with a sandbox in
    # it (or a copied disk) still has those containers and volumes when the engine comes back.
    _remove_sandbox()
    twins = links.create_networks(_LABEL) if nodes > 1 else []
    hosts = {}
    for rank, node in enumerate(members):
        _start(node, image, repo, repo_address, public_key)
        links.connect(node.container, twins, rank)
        port = _ssh_port(node.container)
        wait_for_ssh("127.0.0.1", port, DEPLOY_USER, SSH_KEY_FILE, _SSH_TIMEOUT)
        hosts[node.host] = sandbox_host_data(NAME, CAPABILITIES, DEPLOY_USER, port)
        if twins:
            hosts[node.host].update(links.node_data(HOST_NAME, rank))
    return SandboxState(
        backend=NAME, variant=variant, hosts=hosts,
        resources={"containers": [node.container for node in members],
                   "volumes": [node.volume for node in members], "image": image,
                   "networks": [NETWORK, *twins]},
    )


def _start(node: _Node, image: str, repo: RepoEndpoint, repo_address: str, public_key: str) -> None:
    docker("volume", "create", "--label", _LABEL, node.volume)
    docker(
        "run", "--detach", "--name", node.container, "--hostname", node.container,
        "--label", _LABEL, "--network", NETWORK,
        *[arg for cap in _CAPS for arg in ("--cap-add", cap)],
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--volume", f"{node.volume}:/var/lib/docker",
        "--stop-signal", "SIGRTMIN+3",
        "--publish", "127.0.0.1::22",
        "--add-host", f"{repo.hostname}:{repo_address}",
        image,
    )
    _wait_for_systemd(node.container)
    _trust_local_certificates(node.container)
    _trust_standin_registry(node.container)
    docker("exec", "-i", node.container, "sh", "-c",
           f"cat > /home/{DEPLOY_USER}/.ssh/authorized_keys && "
           f"chown {DEPLOY_USER}: /home/{DEPLOY_USER}/.ssh/authorized_keys && "
           f"chmod 0600 /home/{DEPLOY_USER}/.ssh/authorized_keys",
           input=public_key + "\n")


def is_up(state: SandboxState) -> bool:
    return all(_container_status(name) == "running" for name in _containers(state))


def down(state: SandboxState | None) -> None:
    if not engine_running():
        return
    _remove_sandbox()
    for network in docker("network", "ls", "--quiet", "--filter", f"label={_LABEL}",
                          check=False).stdout.split():
        docker("network", "rm", network, check=False)


def _remove_sandbox() -> None:
    """Every container and volume a sandbox made (they carry its label), recorded or not."""
    for kind in ("container", "volume"):
        listed = docker(kind, "ls", "--quiet", *(["--all"] if kind == "container" else []),
                        "--filter", f"label={_LABEL}", check=False).stdout.split()
        if listed:
            docker(kind, "rm", "--force", *(["--volumes"] if kind == "container" else []),
                   *listed, check=False)


def _containers(state: SandboxState) -> list[str]:
    # states recorded before clusters name one container
    return state.resources.get("containers") or [state.resources["container"]]


def describe(state: SandboxState) -> dict[str, str]:
    lines = {}
    for name in _containers(state):
        status = _container_status(name) or "missing"
        lines[f"container {name}"] = status
        if status == "running":
            lines[f"systemd {name}"] = _systemd_state(name)
    return {**lines, "image": state.resources.get("image", "?")}


def _container_status(container: str) -> str | None:
    result = docker("inspect", "--format", "{{.State.Status}}", container, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _systemd_state(container: str) -> str:
    result = docker("exec", container, "systemctl", "is-system-running", check=False)
    return result.stdout.strip() or "unknown"


def _wait_for_systemd(container: str) -> None:
    """Wait until systemd finished booting (``degraded`` is a finished boot with a failed unit)."""
    deadline = time.monotonic() + _BOOT_TIMEOUT
    state = "unknown"
    while time.monotonic() < deadline:
        if _container_status(container) != "running":
            logs = docker("logs", "--tail", "20", container, check=False)
            raise SandboxError(f"sandbox container {container} stopped while booting:\n"
                               f"{logs.stdout}{logs.stderr}")
        state = _systemd_state(container)
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise SandboxError(f"systemd in {container} did not finish booting within "
                       f"{_BOOT_TIMEOUT:.0f} s (state: {state})")


def _trust_local_certificates(container: str) -> None:
    """Give the sandbox the CA certificates added to this machine, so HTTPS through the same
    network (a TLS-inspecting egress proxy, say) works inside as it does here."""
    if not any(_LOCAL_CA_DIR.glob("*.crt")):
        return
    docker("cp", f"{_LOCAL_CA_DIR}/.", f"{container}:{_LOCAL_CA_DIR}/")
    docker("exec", container, "update-ca-certificates")


def _trust_standin_registry(container: str) -> None:
    """The sandbox's Docker trusts the stand-in registry's CA (per registry, no daemon restart)."""
    directory = f"/etc/docker/certs.d/{registry_standin.certs_dir_name()}"
    docker("exec", container, "mkdir", "-p", directory)
    docker("cp", str(registry_standin.CA_CERT), f"{container}:{directory}/ca.crt")


def install_standins(state: SandboxState, progress: Callable[[str], None]) -> None:
    for container in _containers(state):
        standins.install_into_sandbox(container, state.registry_server.get("address"),
                                      progress=progress)


def _ssh_port(container: str) -> int:
    published = docker("port", container, "22/tcp").stdout.split()
    for address in published:
        host, _, port = address.rpartition(":")
        if host == "127.0.0.1":
            return int(port)
    raise SandboxError(f"{container} publishes no SSH port on 127.0.0.1 ({published})")
