"""Node-to-node SSH for a cluster's image copy: the head's key and pinned host keys, the
workers' forced command. Nothing else is opened between the nodes (see sparkdeploy.cluster_trust).
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from sparkdeploy.cluster import Cluster
from sparkdeploy.cluster_trust import (
    AUTHORIZED_KEYS_DIR,
    HEAD_KEY,
    HEAD_KNOWN_HOSTS,
    HOST_KEY_PUBLIC,
    RECEIVER,
    SUDOERS_FILE,
    authorized_line,
    known_hosts,
    sudoers_line,
)
from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.errors import ConfigError
from sparkdeploy.operations import secret_file
from sparkdeploy.plan import HostPlan
from sparkdeploy.secrets import CLUSTER_SECRETS, host_secrets, ssh_public_key
from tasks.cluster_order import every_node_reaches


@deploy("Node-to-node SSH")
def cluster_trust(plan: HostPlan) -> None:
    service = plan.vllm
    if service is None or service.cluster is None or service.node is None:
        return
    if service.node.rank == 0:
        _head_side(service.cluster)
    else:
        _worker_side(service.cluster)
    every_node_reaches("node-to-node SSH (head key, pinned host keys, worker entries)")


def _head_key(cluster: Cluster) -> str:
    head = cluster.head.host_name
    return host_secrets(head, inventory.get_host(head).data.dict(), CLUSTER_SECRETS)["cluster_ssh_key"]


def _head_side(cluster: Cluster) -> None:
    files.directory(name="Keep root's SSH directory private", path="/root/.ssh",
                    user="root", group="root", mode="0700")
    secret_file(
        name=f"Place the key this head copies images to its workers with ({HEAD_KEY}, secret)",
        content=_head_key(cluster),
        path=HEAD_KEY,
        user="root", group="root", mode="0600",
    )
    host_keys = {worker.host_name: _host_key(worker.host_name) for worker in cluster.workers}
    files.put(
        name="Pin the workers' host keys under their link addresses",
        src=StringIO(known_hosts(cluster, host_keys)),
        dest=HEAD_KNOWN_HOSTS,
        user="root", group="root", mode="0644",
    )


def _worker_side(cluster: Cluster) -> None:
    user = host.data.service_user
    files.put(
        name="Install what the head may run here over SSH (load an image, report an image ID)",
        src=str(PROJECT_ROOT / "files" / "cluster-receive"),
        dest=RECEIVER,
        user="root", group="root", mode="0755",
    )
    sudoers = files.put(
        name=f"Let {user} run only that as root",
        src=StringIO(sudoers_line(user)),
        dest=SUDOERS_FILE,
        user="root", group="root", mode="0440",
    )
    server.shell(
        name="Check the sudoers rule (a broken file would disable sudo)",
        commands=[f"visudo -cq -f {SUDOERS_FILE} || {{ rm -f {SUDOERS_FILE}; exit 1; }}"],
        _if=sudoers.did_change,
    )
    files.directory(name="Keep the keys sparkdeploy authorizes outside users' homes",
                    path=AUTHORIZED_KEYS_DIR, user="root", group="root", mode="0755")
    public = ssh_public_key(_head_key(cluster), f"sparkdeploy cluster {cluster.name} head "
                            f"{cluster.head.host_name}")
    files.put(
        name=f"Authorize the head's key for {user}: from its link addresses, for the receiver only",
        src=StringIO(authorized_line(cluster, public)),
        dest=f"{AUTHORIZED_KEYS_DIR}/{user}",
        user="root", group="root", mode="0644",
    )

def _host_key(host_name: str) -> str:
    """A worker's ed25519 host key, read over the deploy's own (verified) connection to it."""
    line = (inventory.get_host(host_name).get_fact(
        Command, command=f"cat {HOST_KEY_PUBLIC} 2>/dev/null; true") or "").strip()
    parts = line.split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise ConfigError(f"host {host_name!r}", None, f"has no ed25519 host key ({HOST_KEY_PUBLIC}) "
                          "for the head to pin")
    return f"{parts[0]} {parts[1]}"
