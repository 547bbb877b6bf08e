"""The sandbox's ConnectX-7 cable: what makes a multi-node container sandbox a cabled pair.

Each twin of the QSFP port is an internal Docker network of its own (no gateway route, no NAT,
jumbo MTU), with the subnet, first host number and MTU the deploy's defaults give a cluster, so
every node gets the address the deploy computes for it. Connected in twin order after the
management network, the twins are the containers' ``eth1`` and ``eth2``. The containers cannot
run netplan on their own links, so their data says so; the deploy still proves the link (ping at
the full MTU, unfragmented) and the ranks rendezvous over it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sparkdeploy import standins
from sparkdeploy.sandbox.engine import docker

NETWORKS = ("sparkdeploy-sandbox-cx7-a", "sparkdeploy-sandbox-cx7-b")
INTERFACES = ("eth1", "eth2")
# The container's memlock hard limit is the engine's (no CAP_SYS_RESOURCE to raise it): the
# ranks ask for what a container may have instead of a Spark's unlimited.
MEMLOCK_LIMIT = 8388608


def create_networks(label: str) -> list[str]:
    """The twin networks, made afresh (the caller removed a previous sandbox's)."""
    data = standins.sandbox_data()
    for name, subnet in zip(NETWORKS, data["cluster_link_subnets"], strict=True):
        docker("network", "create", "--label", label, "--internal", "--subnet", subnet,
               "--opt", f"com.docker.network.driver.mtu={data['cluster_link_mtu']}", name)
    return list(NETWORKS)


def connect(container: str, networks: list[str], rank: int) -> None:
    """Cable ``container`` as node ``rank``: one address per twin, as the deploy computes them."""
    data = standins.sandbox_data()
    for name, subnet in zip(networks, data["cluster_link_subnets"], strict=False):
        address = ipaddress.ip_network(subnet)[data["cluster_link_first_host"] + rank]
        docker("network", "connect", "--ip", str(address), name, container)


def node_data(group: str, rank: int) -> dict[str, Any]:
    """Host data of cluster node ``rank`` in inventory group ``group`` (head first)."""
    data: dict[str, Any] = {
        "cluster_group": group,
        "cluster_link_interfaces": list(INTERFACES),
        "host_can_configure_links": False,
        "cluster_memlock_limit": MEMLOCK_LIMIT,
        # upstream's gpt-oss-120b recipe across both: one rank per Spark, and only it (a
        # cluster serves its one recipe, at the recipe's gpu_memory_utilization)
        "vllm_params": {"tensor_parallel": 2},
        "models": [],
        "vllm_memory_gib": None,
        # the pair's tests stop and restart ranks on purpose: a rank waiting for its peers is
        # loading, not wedged (the head's watchdog still probes, with this patience)
        "watchdog_start_grace": 600,
        # the relay is no cluster matter (the single sandbox covers it): the pair flow stays short
        "relay_enabled": False,
    }
    if rank:
        data["proxy_enabled"] = False
    return data
