"""The ConnectX-7 link between a cluster's nodes: what proves it and what the deploy cannot fix.

The deploy writes the link's netplan file and then proves the link the way NCCL will use it:
every peer answers over every twin at the full MTU with fragmentation forbidden (``ping -M do
-s <mtu - 28>``: 20 bytes of IP and 8 of ICMP header). What it does not change is only warned
about: kernel 7.0 without ``kho=off`` (NCCL then fails with ``ibv_reg_mr`` ENOMEM) and a link
interface that is down.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from sparkdeploy.cluster import Cluster, ClusterNode
from sparkdeploy.data import PROJECT_ROOT

NETPLAN_PATH = "/etc/netplan/40-cx7.yaml"
_NETPLAN_TEMPLATE = "templates/etc/netplan/40-cx7.yaml.j2"
_IP_AND_ICMP_HEADERS = 28
_PING_COUNT = 2
_PING_WAIT_SECONDS = 2


@dataclass(frozen=True)
class PingResult:
    interface: str
    peer: str
    address: str
    ok: bool
    output: str


def netplan_document(cluster: Cluster, node: ClusterNode) -> str:
    """``/etc/netplan/40-cx7.yaml`` for ``node`` (the template mirrors the target path)."""
    environment = Environment(loader=FileSystemLoader(str(PROJECT_ROOT)), undefined=StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template(_NETPLAN_TEMPLATE).render(
        cluster=cluster.name, mtu=cluster.mtu,
        twins=[{"interface": twin.interface, "address": str(twin.address)} for twin in node.twins])


def ping_script(cluster: Cluster, node: ClusterNode) -> str:
    """One line per (twin, peer): ``ok|fail <iface> <peer host> <address> <ping's last line>``."""
    size = cluster.mtu - _IP_AND_ICMP_HEADERS
    lines = []
    for index, twin in enumerate(node.twins):
        for peer in cluster.peers(node.host_name):
            address = peer.twins[index].ip
            command = (f"ping -M do -s {size} -c {_PING_COUNT} -W {_PING_WAIT_SECONDS} "
                       f"-I {shlex.quote(twin.interface)} {shlex.quote(address)}")
            label = " ".join(shlex.quote(part) for part in (twin.interface, peer.host_name, address))
            lines.append(f"out=$({command} 2>&1); rc=$?; last=$(printf '%s' \"$out\" | tail -n 2 | "
                         f"tr '\\n' ' '); if [ $rc -eq 0 ]; then echo \"ok {label} $last\"; "
                         f"else echo \"fail {label} $last\"; fi")
    return "\n".join(lines)


def parse_pings(lines: list[str]) -> list[PingResult]:
    results = []
    for line in lines:
        parts = line.split(" ", 4)
        if len(parts) >= 4 and parts[0] in ("ok", "fail"):
            results.append(PingResult(parts[1], parts[2], parts[3], parts[0] == "ok",
                                      parts[4].strip() if len(parts) > 4 else ""))
    return results


def failed_pings(results: list[PingResult], mtu: int) -> str | None:
    """What went wrong, in one line, or None when every peer answered on every twin."""
    failed = [result for result in results if not result.ok]
    if not results:
        return "no link check ran (ping missing?)"
    if not failed:
        return None
    return "; ".join(f"{result.peer} ({result.address}) does not answer over {result.interface} at MTU "
                     f"{mtu} without fragmentation: {result.output or 'no output'}" for result in failed)


def host_warnings(facts: Mapping[str, str], node: ClusterNode) -> list[str]:
    """Preflight warnings for what the deploy does not change (kernel command line, link state)."""
    warnings = []
    kernel, cmdline = facts.get("kernel", ""), facts.get("cmdline", "")
    if kernel.startswith("7.0") and "kho=off" not in cmdline.split():
        warnings.append(f"kernel {kernel} without kho=off: NCCL fails with ibv_reg_mr ENOMEM at "
                        "start; add kho=off to the kernel command line (or boot 6.17)")
    for twin in node.twins:
        state = facts.get(f"state_{twin.interface}", "")
        if state and state not in ("UP", "UNKNOWN"):
            warnings.append(f"link interface {twin.interface} is {state} (cable, or the port's "
                            "firmware setting)")
        if not state:
            warnings.append(f"link interface {twin.interface} does not exist on this host "
                            "(cluster_link_interfaces: check `ip -br link`)")
    return warnings


def host_facts_script(node: ClusterNode) -> str:
    """``key value`` lines: kernel release, kernel command line, each link interface's state."""
    lines = ["echo \"kernel $(uname -r)\"", "echo \"cmdline $(cat /proc/cmdline)\""]
    for twin in node.twins:
        interface = shlex.quote(twin.interface)
        lines.append(f"echo \"state_{twin.interface} $(cat /sys/class/net/{interface}/operstate "
                     "2>/dev/null | tr a-z A-Z)\"")
    return "\n".join(lines)


def parse_facts(lines: list[str]) -> dict[str, str]:
    facts = {}
    for line in lines:
        key, _, value = line.partition(" ")
        if key:
            facts[key] = value.strip()
    return facts


def management_interface_script() -> str:
    """The interface carrying this SSH session (the management connection the link must spare)."""
    return ('set -- $SSH_CONNECTION; [ -n "$1" ] && ip -o route get "$1" 2>/dev/null | '
            "sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | head -n 1; true")
