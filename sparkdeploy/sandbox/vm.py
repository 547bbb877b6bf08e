"""The ``vm`` sandbox backend: a qemu VM with its own kernel, for what the container cannot do.

The container shares this machine's kernel, which has no NFS, keeps ``/proc/sys`` read-only and
cannot lower OOM scores; the VM does all three and reboots, so its host data says so
(:data:`CAPABILITIES`) and points the NFS mount at the flashstore exported inside the same guest.

Each ``up`` restores the image's saved running system on a throwaway overlay of the disk it was
saved with (seconds, where a boot under emulation takes a minute), then sets the guest's clock,
which restarts from the moment of the save. Should the restore fail, it boots cold and says so
in ``sparkdeploy sandbox status``; ``SPARKDEPLOY_SANDBOX_VM_BOOT=cold`` asks for a cold boot.

Network: qemu's user-mode network, nothing bridged. SSH is forwarded from 127.0.0.1 only, and
the stand-in servers listen on 127.0.0.1, which the guest reaches at qemu's host alias
10.0.2.2 (slirp connects those to this machine's loopback): nothing listens beyond loopback.

``--nodes 2`` makes two VMs cabled like two Sparks: each twin of the link is a NIC pair whose
frames qemu carries as UDP datagrams on 127.0.0.1 (:func:`vm_qemu.cable`). Unlike the container
pair's Docker networks, nothing configures these NICs but the deploy: its netplan file gives
them their addresses and MTU on a real kernel, and its proof pings across them. The pair is a
cluster without a recipe (serving under emulation is out of reach, see
:func:`host_data_overrides`): the link is what it shows.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparkdeploy.data import documented_defaults
from sparkdeploy.sandbox import vm_image, vm_qemu
from sparkdeploy.sandbox.image import DEPLOY_USER
from sparkdeploy.sandbox.local import SandboxError, require_commands
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

NAME = "vm"
CAPABILITIES = {
    "host_can_mount_nfs": True,
    "host_can_write_sysctl": True,
    "host_can_lower_oom_score": True,
}
RUN_DIR = SANDBOX_DIR / "vm"
BOOT_ENV = "SPARKDEPLOY_SANDBOX_VM_BOOT"
# command -> Debian package on this machine
HOST_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "debvm-create": "debvm",
    "mmdebstrap": "mmdebstrap", "mkfs.ext4": "e2fsprogs", "ssh": "openssh-client", "zstd": "zstd",
}
_BUILD_LOG = SANDBOX_DIR / "vm-image-build.log"
_RESTORE_TIMEOUT = 60.0
_COLD_BOOT_TIMEOUT = 600.0


def host_data_overrides() -> dict[str, Any]:
    """What the VM host's data changes beyond ``group_data/sandbox.py``."""
    flashstore = f"127.0.0.1:{vm_image.FLASHSTORE_EXPORT}"
    return {
        # The model store mounted from the flashstore, at the mount point and with the options
        # group_data/all.py gives a Spark.
        "nfs_mounts": [{**mount, "source": flashstore}
                       for mount in documented_defaults()["nfs_mounts"][:1]],
        # No model server or proxy: under emulation, loading the stand-in images alone took
        # 14 min here and the proxy's Python import 2 min; the container backend covers serving.
        "recipe": None,
        "models": [],
        "vllm_memory_gib": None,
        "proxy_enabled": False,
        "relay_enabled": False,
        # earlyoom's Spark floors (4 and 2 GiB) reach the VM's whole memory: it would kill at once.
        "earlyoom_memory_term_kib": 262144,
        "earlyoom_memory_kill_kib": 131072,
    }


def prepare() -> str:
    """Install qemu and the image tools when missing; return this machine's loopback address,
    where the guest reaches the stand-in servers (as 10.0.2.2)."""
    require_commands(HOST_PACKAGES)
    return "127.0.0.1"


def up(variant: str, repo: RepoEndpoint, repo_address: str, nodes: int = 1) -> SandboxState:
    if repo_address != "127.0.0.1":
        raise SandboxError(f"the VM reaches this machine's loopback only, not {repo_address}")
    public_key = ensure_keypair(SSH_KEY_FILE)
    image = vm_image.ensure_image(variant, public_key, SSH_KEY_FILE, _BUILD_LOG)
    names = node_names(nodes)
    hosts, boots = {}, {}
    for name, links in zip(names, vm_qemu.cable(nodes), strict=True):
        instance = vm_qemu.Instance(RUN_DIR / name)
        vm_qemu.stop(instance)
        started = time.monotonic()
        port, boot = _start(image, instance, links)
        boots[name] = {"boot": boot, "boot_seconds": round(time.monotonic() - started, 1)}
        _, interfaces = vm_qemu.guest_run(port, DEPLOY_USER, SSH_KEY_FILE,
                                          _guest_setup(repo.hostname, name, links))
        hosts[name] = {**sandbox_host_data(NAME, CAPABILITIES, DEPLOY_USER, port),
                       **host_data_overrides()}
        if nodes > 1:
            hosts[name].update({"cluster_group": HOST_NAME,
                                "cluster_link_interfaces": interfaces.split()})
    return SandboxState(
        backend=NAME, variant=variant, hosts=hosts,
        resources={"run_dirs": [str(RUN_DIR / name) for name in names],
                   "image": str(image.directory), "accelerator": vm_qemu.accelerator(),
                   "boots": boots},
    )


def is_up(state: SandboxState) -> bool:
    return all(instance.pid() is not None for instance in _instances(state))


def down(state: SandboxState | None) -> None:
    for instance in _instances(state):
        vm_qemu.stop(instance)
    shutil.rmtree(RUN_DIR, ignore_errors=True)


def describe(state: SandboxState) -> dict[str, str]:
    lines = {}
    resources = state.resources
    for instance in _instances(state):
        pid = instance.pid()
        boot = resources.get("boots", {}).get(instance.run_dir.name, {})
        lines[f"vm {instance.run_dir.name}"] = (
            f"qemu pid {pid} ({resources.get('accelerator', '?')}), "
            f"{boot.get('boot', '?')} in {boot.get('boot_seconds', '?')} s, "
            f"serial log {instance.serial_log}" if pid else "qemu not running")
    lines["image"] = resources.get("image", "?")
    return lines


def install_standins(state: SandboxState, progress: Callable[[str], None]) -> None:
    """Nothing: the VM serves no model (``recipe`` None), so no image, repository or weights."""


def image_timings(state: SandboxState) -> dict[str, float]:
    """What building the sandbox's image took, as recorded then: image build, first (cold) boot
    to SSH and to a running system, saving the state; plus this ``up``'s slowest boot."""
    image = vm_image.VmImage(Path(state.resources["image"]))
    boots = state.resources.get("boots", {}).values()
    return {**image.timings(), "boot": max((float(boot["boot_seconds"]) for boot in boots), default=0.0)}


def _start(image: vm_image.VmImage, instance: vm_qemu.Instance,
           links: tuple[vm_qemu.LinkPort, ...]) -> tuple[int, str]:
    """Restore the saved system (or boot cold); return the SSH port and how it started."""
    if os.environ.get(BOOT_ENV) == "cold":
        return _cold_boot(image, instance, links), f"cold boot ({BOOT_ENV}=cold)"
    try:
        return _restore(image, instance, links), "restored saved state"
    except (SandboxError, OSError) as exc:
        vm_qemu.stop(instance)
        return _cold_boot(image, instance, links), f"cold boot (restoring failed: {exc})"


def _restore(image: vm_image.VmImage, instance: vm_qemu.Instance,
             links: tuple[vm_qemu.LinkPort, ...]) -> int:
    vm_qemu.create_overlay(instance.disk, image.saved_disk)
    port = vm_qemu.free_port()
    vm_qemu.start(image.machine, instance, port, vm_image.HOSTNAME, links, incoming=image.saved_ram)
    vm_qemu.wait_for_status(instance, "paused", _RESTORE_TIMEOUT)
    vm_qemu.hmp(instance, "cont")
    vm_qemu.wait_for_sshd(port, _RESTORE_TIMEOUT)
    wait_for_ssh("127.0.0.1", port, DEPLOY_USER, SSH_KEY_FILE, _RESTORE_TIMEOUT)
    return port


def _cold_boot(image: vm_image.VmImage, instance: vm_qemu.Instance,
               links: tuple[vm_qemu.LinkPort, ...]) -> int:
    vm_qemu.create_overlay(instance.disk, image.base_disk)
    port = vm_qemu.free_port()
    vm_qemu.start(image.machine, instance, port, vm_image.HOSTNAME, links)
    vm_qemu.wait_for_sshd(port, _COLD_BOOT_TIMEOUT)
    wait_for_ssh("127.0.0.1", port, DEPLOY_USER, SSH_KEY_FILE, _COLD_BOOT_TIMEOUT)
    return port


def _guest_setup(repo_hostname: str, name: str, links: tuple[vm_qemu.LinkPort, ...]) -> str:
    """The clock set to now (a restored guest resumes at the moment of the save), the stand-ins'
    host name resolving to this machine's loopback, the node's own host name, and each link NIC
    given its MAC from the command line (a restored guest keeps the one it was saved with, the
    same on every node; a reboot reads the command line's). Prints the link NICs' names."""
    lines = ["set -eu",
             f"date -u -s @{time.time():.0f} >/dev/null",
             f"sed -i '/[[:space:]]{repo_hostname}$/d' /etc/hosts",
             f"echo '{vm_qemu.HOST_ALIAS} {repo_hostname}' >> /etc/hosts",
             f"hostnamectl set-hostname {vm_image.HOSTNAME}{name[len(HOST_NAME):]}"]
    for twin, link in enumerate(links):
        device = vm_qemu.pci_address(vm_qemu.LINK_SLOTS[twin])
        lines += [
            "dev=",
            "for net in /sys/class/net/*; do",
            # a virtio NIC's device is the virtioN below its PCI function
            f'  case "$(readlink -f "$net/device")" in */{device}/*) dev=${{net##*/}};; esac',
            "done",
            f'[ -n "$dev" ] || {{ echo "no link NIC at {device}" >&2; exit 1; }}',
            f'ip link set dev "$dev" address {link.mac}',
            'echo "$dev"',
        ]
    return "\n".join(lines)


def _instances(state: SandboxState | None) -> list[vm_qemu.Instance]:
    """The recorded VMs, or after a failed or unrecorded ``up`` every one under RUN_DIR."""
    run_dirs = state.resources.get("run_dirs") if state else None
    if run_dirs:
        return [vm_qemu.Instance(Path(run_dir)) for run_dir in run_dirs]
    if not RUN_DIR.is_dir():
        return []
    return [vm_qemu.Instance(path) for path in sorted(RUN_DIR.iterdir()) if path.is_dir()]
