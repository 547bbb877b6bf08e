"""The ConnectX-7 link of a cluster node, as the kernel has it: the netplan file, each twin's
address and MTU, and every peer answering over every twin at the full MTU unfragmented."""

from __future__ import annotations

import json

import pytest

from sparkdeploy.cluster import cluster_of, clusters
from sparkdeploy.inventory import hosts_data, load_inventory
from sparkdeploy.link import NETPLAN_PATH, failed_pings, netplan_document, parse_pings, ping_script


@pytest.fixture(scope="module")
def link(host_name):
    """(cluster, node) of the checked host; skipped where it is no cluster node."""
    cluster = cluster_of(host_name, clusters(hosts_data(load_inventory("inventory.py"))))
    if cluster is None:
        pytest.skip(f"{host_name} is not a cluster node (no cluster_group in its data)")
    return cluster, cluster.node(host_name)


@pytest.mark.requires("host_can_configure_links")
def test_the_netplan_file_is_the_rendered_one_and_root_only(host, link):
    netplan = host.file(NETPLAN_PATH)
    assert (netplan.user, netplan.group, netplan.mode) == ("root", "root", 0o600)
    assert netplan.content_string == netplan_document(*link)


@pytest.mark.requires("host_can_configure_links")
def test_each_twin_is_up_with_its_address_alone_and_the_link_mtu(host, link):
    cluster, node = link
    for twin in node.twins:
        [device] = json.loads(host.check_output(f"ip -d -j link show dev {twin.interface}"))
        assert device["mtu"] == cluster.mtu, (twin.interface, device["mtu"])
        assert "UP" in device["flags"] and device["operstate"] in ("UP", "UNKNOWN"), device
        [addresses] = json.loads(host.check_output(f"ip -j addr show dev {twin.interface}"))
        # static only: no DHCP lease, no IPv6 link-local
        assert [f"{a['local']}/{a['prefixlen']}" for a in addresses["addr_info"]] == [str(twin.address)]


def test_every_peer_answers_over_every_twin_at_the_full_mtu_unfragmented(host, link):
    cluster, node = link
    results = parse_pings(host.check_output(ping_script(cluster, node)).splitlines())
    assert len(results) == len(node.twins) * len(cluster.peers(node.host_name))
    assert failed_pings(results, cluster.mtu) is None
