"""The ConnectX-7 link of a cluster node: netplan from data, applied only on change, then proven.

It runs on every node of a cluster, with or without a recipe yet: cabling and proving the pair
comes before choosing what it serves.

Per twin a static address on a subnet of its own, no DHCP, no link-local, the MTU from data, in
``/etc/netplan/40-cx7.yaml`` (root 0600), applied only when the file changed and never on the
interface that carries the management connection. Then every peer must answer over every twin
at the full MTU without fragmentation, or the deploy stops with what ping saw: ranks on a link
that fragments or drops jumbo frames hang in NCCL's first all-reduce.
"""

from __future__ import annotations

import time
from io import StringIO

from pyinfra import host, inventory, logger
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, python, server

from sparkdeploy.cluster import Cluster, ClusterNode
from sparkdeploy.errors import ConfigError
from sparkdeploy.link import (
    NETPLAN_PATH,
    failed_pings,
    host_facts_script,
    host_warnings,
    management_interface_script,
    netplan_document,
    parse_facts,
    parse_pings,
    ping_script,
)
from sparkdeploy.plan import HostPlan
from tasks.cluster_order import every_node_reaches

_PROOF_SECONDS = 60.0
# The netplan operations of every node, so the proof runs wherever any node's link changed.
_netplan_ops: dict[tuple[int, str], list[OperationMeta]] = {}


@deploy("ConnectX-7 link")
def cx7_link(plan: HostPlan) -> None:
    cluster, node = plan.cluster, plan.node
    if cluster is None or node is None:
        return
    for warning in host_warnings(parse_facts(_command(host_facts_script(node)).splitlines()), node):
        logger.warning(f"{host.print_prefix}preflight: {warning}")
    changes = _netplan_ops.setdefault((id(host.state), cluster.name), [])
    if host.data.get("host_can_configure_links", True):
        changes.append(_netplan(cluster, node))
    else:
        logger.warning(f"{host.print_prefix}not writing {NETPLAN_PATH}: this host's links are not "
                       "its own to configure (host_can_configure_links is false)")
    _prove(cluster, node, changes)


def _netplan(cluster: Cluster, node: ClusterNode) -> OperationMeta:
    management = _command(management_interface_script(), sudo=False).strip()
    if management and management in {twin.interface for twin in node.twins}:
        raise ConfigError(f"host {host.name!r} data", "cluster_link_interfaces",
                          f"{management} carries this deploy's SSH connection; configuring it as "
                          "a link twin would cut the management connection")
    apt.packages(name="Install netplan (renders the link configuration)", packages=["netplan.io"])
    netplan = files.put(
        name=f"Configure the link twins {', '.join(t.interface for t in node.twins)} ({NETPLAN_PATH})",
        src=StringIO(netplan_document(cluster, node)),
        dest=NETPLAN_PATH,
        user="root",
        group="root",
        mode="0600",
    )
    server.shell(
        name="Apply the link configuration (netplan apply)",
        commands=["netplan generate", "netplan apply"],
        _if=netplan.did_change,
    )
    return netplan


def _prove(cluster: Cluster, node: ClusterNode, changes: list[OperationMeta]) -> None:
    """A converged link is checked now (prepare: the run stops before any change if it is broken);
    a changing one right after every node applied it, waiting a little for the peers."""
    if not _may_change(cluster):
        problem = failed_pings(parse_pings(_command(ping_script(cluster, node)).splitlines()), cluster.mtu)
        if problem:
            raise ConfigError(f"host {host.name!r}", "cluster_link_interfaces", problem)
        return
    every_node_reaches("the link configuration")
    python.call(
        name=f"Prove the link: every peer answers over every twin at MTU {cluster.mtu} unfragmented",
        function=_ping_until_up,
        script=ping_script(cluster, node),
        mtu=cluster.mtu,
        _if=lambda: any(op.did_change() for op in changes),
    )


def _may_change(cluster: Cluster) -> bool:
    """Whether any node's netplan file differs from what the deploy renders (read on each node)."""
    for peer in cluster.nodes:
        node_host = inventory.get_host(peer.host_name)
        if not node_host.data.get("host_can_configure_links", True):
            continue
        current = node_host.get_fact(Command, command=f"cat {NETPLAN_PATH} 2>/dev/null; true", _sudo=True)
        if (current or "").strip() != netplan_document(cluster, peer).strip():
            return True
    return False


def _ping_until_up(state, host, script: str, mtu: int) -> bool:
    deadline = time.monotonic() + _PROOF_SECONDS
    while True:
        _, output = host.run_shell_command(script, _sudo=True)
        problem = failed_pings(parse_pings(list(output.stdout_lines)), mtu)
        if problem is None:
            host.log_styled("every peer answers over every twin at the full MTU", fg="cyan")
            return True
        if time.monotonic() > deadline:
            host.log_styled(f"link check failed: {problem}", fg="red", log_func=logger.error)
            return False
        time.sleep(3)


def _command(script: str, sudo: bool = True) -> str:
    return host.get_fact(Command, command=script, _sudo=sudo) or ""
