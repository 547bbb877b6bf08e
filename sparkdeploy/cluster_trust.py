"""Node-to-node SSH inside a cluster, only as far as the image copy needs it.

The head streams its image to each worker (``docker save | ssh worker docker load``). It logs in
with a key of its own (generated on the workstation, kept with the other secrets) to the
worker's service account, and pins the worker's host key, read by the deploy over its own
verified connection (never ``StrictHostKeyChecking=no``). On the worker the key is accepted only
from the head's link addresses and only for one forced command that may load an image or report
an image ID; it lives in a root-owned file sshd is told to read, outside the service user's home.
"""

from __future__ import annotations

import shlex

from sparkdeploy.cluster import Cluster, ClusterNode

RECEIVER = "/usr/local/lib/sparkdeploy/cluster-receive"
HEAD_KEY = "/root/.ssh/sparkdeploy-cluster"
HEAD_KNOWN_HOSTS = "/root/.ssh/sparkdeploy-cluster-known_hosts"
# Beside, not inside, the sshd staging directory (root 0700): sshd reads authorized keys with
# the logging-in user's rights, so every directory on the way must be world-traversable.
AUTHORIZED_KEYS_DIR = "/etc/ssh/sparkdeploy-authorized_keys"
SUDOERS_FILE = "/etc/sudoers.d/sparkdeploy-cluster-receive"
HOST_KEY_PUBLIC = "/etc/ssh/ssh_host_ed25519_key.pub"


def authorized_line(cluster: Cluster, public_key: str) -> str:
    """The worker's entry for the head's key: its link addresses only, the receiver only."""
    addresses = ",".join(twin.ip for twin in cluster.head.twins)
    command = f'sudo -n {RECEIVER} \\"$SSH_ORIGINAL_COMMAND\\"'
    return f'restrict,from="{addresses}",command="{command}" {public_key}\n'


def sudoers_line(user: str) -> str:
    """The one root command the service user may run without a password: the receiver."""
    return f"{user} ALL=(root) NOPASSWD: {RECEIVER} *\n"


def known_hosts(cluster: Cluster, host_keys: dict[str, str]) -> str:
    """Each worker's host key under every link address the head reaches it on."""
    return "".join(f"{','.join(twin.ip for twin in worker.twins)} {host_keys[worker.host_name]}\n"
                   for worker in cluster.workers)


def ssh_command(worker: ClusterNode, user: str, port: int, request: str) -> str:
    """The head's SSH command running ``request`` on ``worker`` over the link, host key pinned."""
    return shlex.join([
        "ssh", "-i", HEAD_KEY, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={HEAD_KNOWN_HOSTS}",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-p", str(port),
        f"{user}@{worker.ip}", request])


def copy_script(image: str, cluster: Cluster, user: str, port: int) -> str:
    """Copy ``image`` to every worker whose image ID differs, streamed over the link (bash)."""
    image_q = shlex.quote(image)
    lines = ["set -euo pipefail", f"id=$(docker image inspect --format '{{{{.Id}}}}' {image_q})"]
    for worker in cluster.workers:
        remote = ssh_command(worker, user, port, f"image-id {image}")
        load = ssh_command(worker, user, port, "docker load")
        lines += [f"if [ \"$({remote} 2>/dev/null || true)\" != \"$id\" ]; then",
                  f"  echo {shlex.quote(f'copying {image} to {worker.host_name} ({worker.ip})')}",
                  f"  docker save {image_q} | {load}",
                  "fi"]
    return "\n".join(lines)
