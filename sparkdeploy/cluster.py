"""Two (or N) Sparks as one serving unit: who the nodes are, their link addresses, their ranks.

A cluster is the hosts sharing a ``cluster_group`` value (set in ``group_data/<group>.py``), in
inventory order: the first is the head (rank 0, serves HTTP), the others are workers. Each node
reaches the others over the ConnectX-7 link: one QSFP port is two PCIe "twins", each given a
static address on a subnet of its own (upstream's NETWORKING.md: never the same subnet on both).
Everything here is checked for the whole inventory before any host is touched.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkdeploy.errors import ConfigError

EXECUTORS = ("no-ray", "ray")
_INTERFACE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
_RDMA_DEVICE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class LinkTwin:
    """One twin of a node's link port: its interface and its address with prefix."""

    interface: str
    address: ipaddress.IPv4Interface

    @property
    def ip(self) -> str:
        return str(self.address.ip)


@dataclass(frozen=True)
class ClusterNode:
    host_name: str
    rank: int
    twins: tuple[LinkTwin, ...]

    @property
    def ip(self) -> str:
        """The address ranks use for this node (its first twin), as upstream's VLLM_HOST_IP."""
        return self.twins[0].ip

    @property
    def interface(self) -> str:
        return self.twins[0].interface


@dataclass(frozen=True)
class Cluster:
    name: str
    nodes: tuple[ClusterNode, ...]
    mtu: int
    master_port: int
    executor: str
    rdma_devices: tuple[str, ...]

    @property
    def head(self) -> ClusterNode:
        return self.nodes[0]

    @property
    def workers(self) -> tuple[ClusterNode, ...]:
        return self.nodes[1:]

    def node(self, host_name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.host_name == host_name)

    def peers(self, host_name: str) -> tuple[ClusterNode, ...]:
        return tuple(node for node in self.nodes if node.host_name != host_name)


def clusters(hosts_data: Mapping[str, Mapping[str, Any]]) -> dict[str, Cluster]:
    """Every cluster of the inventory by name; bad topology data is a :class:`ConfigError`."""
    members: dict[str, list[str]] = {}
    for host_name, data in hosts_data.items():
        name = data.get("cluster_group")
        if name is not None:
            if not isinstance(name, str) or not name:
                raise ConfigError(f"host {host_name!r} data", "cluster_group",
                                  f"{name!r} is not a group name")
            members.setdefault(name, []).append(host_name)
    found = {name: _cluster(name, hosts, hosts_data) for name, hosts in members.items()}
    _check_unique_addresses(found)
    return found


def cluster_of(host_name: str, found: Mapping[str, Cluster]) -> Cluster | None:
    return next((cluster for cluster in found.values()
                 if any(node.host_name == host_name for node in cluster.nodes)), None)


def _cluster(name: str, hosts: list[str], hosts_data: Mapping[str, Mapping[str, Any]]) -> Cluster:
    head = hosts_data[hosts[0]]
    source = f"cluster {name!r} (hosts with cluster_group {name!r})"
    if len(hosts) < 2:
        raise ConfigError(source, "cluster_group", f"only {hosts[0]!r} is in it; a cluster is two or "
                          "more Sparks", allowed="the same cluster_group on every Spark of the pair, "
                          "or none on a single Spark")
    for key in ("recipe", "vllm_params", "cluster_link_mtu", "cluster_master_port",
                "cluster_executor", "upstream_commit", "vllm_image_pins", "model_revision"):
        for host_name in hosts[1:]:
            if hosts_data[host_name].get(key) != head.get(key):
                raise ConfigError(f"host {host_name!r} data", key, f"differs from the head "
                                  f"{hosts[0]!r} of cluster {name!r}: every node runs the same model")
    executor = head.get("cluster_executor", "no-ray")
    if executor not in EXECUTORS:
        raise ConfigError(source, "cluster_executor", f"{executor!r} is not an executor",
                          allowed=", ".join(EXECUTORS))
    mtu = head.get("cluster_link_mtu", 9000)
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 1280 <= mtu <= 9216:
        raise ConfigError(source, "cluster_link_mtu", f"{mtu!r} is not an MTU", allowed="1280 to 9216")
    port = head.get("cluster_master_port", 29501)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(source, "cluster_master_port", f"{port!r} is not a port", allowed="1 to 65535")
    rdma = tuple(head.get("cluster_rdma_devices") or ())
    if not all(isinstance(device, str) and _RDMA_DEVICE.fullmatch(device) for device in rdma):
        raise ConfigError(source, "cluster_rdma_devices", f"{list(rdma)!r} are not device names")
    nodes = tuple(_node(host_name, rank, hosts_data[host_name]) for rank, host_name in enumerate(hosts))
    return Cluster(name, nodes, mtu, port, executor, rdma)


def _node(host_name: str, rank: int, data: Mapping[str, Any]) -> ClusterNode:
    source = f"host {host_name!r} data"
    interfaces = list(data.get("cluster_link_interfaces") or [])
    if not interfaces or not all(isinstance(name, str) and _INTERFACE.fullmatch(name) for name in interfaces):
        raise ConfigError(source, "cluster_link_interfaces", f"{interfaces!r} are not interface names",
                          allowed="e.g. [\"enp1s0f1np1\", \"enP2p1s0f1np1\"]")
    if len(set(interfaces)) != len(interfaces):
        raise ConfigError(source, "cluster_link_interfaces", "an interface is named twice")
    addresses = data.get("cluster_link_addresses")
    if addresses is None:
        addresses = _default_addresses(source, data, rank, len(interfaces))
    if not isinstance(addresses, (list, tuple)) or len(addresses) != len(interfaces):
        raise ConfigError(source, "cluster_link_addresses",
                          f"expected one address per link interface ({len(interfaces)})")
    twins = tuple(LinkTwin(interface, _address(source, "cluster_link_addresses", address))
                  for interface, address in zip(interfaces, addresses, strict=True))
    networks = [twin.address.network for twin in twins]
    if len(set(networks)) != len(networks):
        raise ConfigError(source, "cluster_link_addresses", "two twins share a subnet; each twin "
                          "needs a subnet of its own (upstream NETWORKING.md)")
    return ClusterNode(host_name, rank, twins)


def _default_addresses(source: str, data: Mapping[str, Any], rank: int, count: int) -> list[str]:
    """Host ``cluster_link_first_host + rank`` of each twin's subnet (.11, .12, ... by default)."""
    subnets = list(data.get("cluster_link_subnets") or [])
    if len(subnets) != count:
        raise ConfigError(source, "cluster_link_subnets",
                          f"expected one subnet per link interface ({count}), got {len(subnets)}")
    first = data.get("cluster_link_first_host", 11)
    if isinstance(first, bool) or not isinstance(first, int) or first < 1:
        raise ConfigError(source, "cluster_link_first_host", f"{first!r} is not a host number")
    addresses = []
    for subnet in subnets:
        try:
            network = ipaddress.IPv4Network(subnet)
        except (ValueError, TypeError) as exc:
            raise ConfigError(source, "cluster_link_subnets", f"{subnet!r} is not an IPv4 subnet") from exc
        if first + rank >= network.num_addresses - 1:
            raise ConfigError(source, "cluster_link_first_host", f"rank {rank} has no address in {subnet}")
        addresses.append(f"{network.network_address + first + rank}/{network.prefixlen}")
    return addresses


def _address(source: str, key: str, value: object) -> ipaddress.IPv4Interface:
    try:
        address = ipaddress.IPv4Interface(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, key, f"{value!r} is not an IPv4 address with prefix",
                          allowed="e.g. 192.168.177.11/24") from exc
    if address.ip in (address.network.network_address, address.network.broadcast_address):
        raise ConfigError(source, key, f"{value!r} is the subnet's network or broadcast address")
    return address


def _check_unique_addresses(found: Mapping[str, Cluster]) -> None:
    seen: dict[str, str] = {}
    for cluster in found.values():
        for node in cluster.nodes:
            for twin in node.twins:
                if twin.ip in seen:
                    raise ConfigError(f"host {node.host_name!r} data", "cluster_link_addresses",
                                      f"{twin.ip} is also {seen[twin.ip]}'s link address")
                seen[twin.ip] = node.host_name
