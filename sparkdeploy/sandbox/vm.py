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
        "proxy_enabled": False,
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
    if nodes != 1:
        raise SandboxError("the VM backend makes one host; a cabled pair is the container "
                           "backend's (sparkdeploy sandbox up --nodes 2)")
    if repo_address != "127.0.0.1":
        raise SandboxError(f"the VM reaches this machine's loopback only, not {repo_address}")
    public_key = ensure_keypair(SSH_KEY_FILE)
    image = vm_image.ensure_image(variant, public_key, SSH_KEY_FILE, _BUILD_LOG)
    instance = vm_qemu.Instance(RUN_DIR)
    vm_qemu.stop(instance)
    started = time.monotonic()
    port, boot = _start(image, instance)
    boot_seconds = time.monotonic() - started
    vm_qemu.guest_run(port, DEPLOY_USER, SSH_KEY_FILE, _guest_setup(repo.hostname))
    data = {**sandbox_host_data(NAME, CAPABILITIES, DEPLOY_USER, port), **host_data_overrides()}
    return SandboxState(
        backend=NAME, variant=variant, hosts={HOST_NAME: data},
        resources={"run_dir": str(RUN_DIR), "image": str(image.directory),
                   "accelerator": vm_qemu.accelerator(), "boot": boot,
                   "boot_seconds": round(boot_seconds, 1)},
    )


def is_up(state: SandboxState) -> bool:
    return _instance(state).pid() is not None


def down(state: SandboxState | None) -> None:
    instance = _instance(state)
    vm_qemu.stop(instance)
    shutil.rmtree(instance.run_dir, ignore_errors=True)


def describe(state: SandboxState) -> dict[str, str]:
    instance = _instance(state)
    pid = instance.pid()
    resources = state.resources
    return {
        "vm": (f"qemu pid {pid} ({resources.get('accelerator', '?')})" if pid
               else "qemu not running"),
        "boot": f"{resources.get('boot', '?')} in {resources.get('boot_seconds', '?')} s",
        "image": resources.get("image", "?"),
        "serial log": str(instance.serial_log),
    }


def install_standins(state: SandboxState, progress: Callable[[str], None]) -> None:
    """Nothing: the VM serves no model (``recipe`` None), so no image, repository or weights."""


def image_timings(state: SandboxState) -> dict[str, float]:
    """What building the sandbox's image took, as recorded then: image build, first (cold) boot
    to SSH and to a running system, saving the state; plus this ``up``'s boot."""
    image = vm_image.VmImage(Path(state.resources["image"]))
    return {**image.timings(), "boot": float(state.resources.get("boot_seconds", 0.0))}


def _start(image: vm_image.VmImage, instance: vm_qemu.Instance) -> tuple[int, str]:
    """Restore the saved system (or boot cold); return the SSH port and how it started."""
    if os.environ.get(BOOT_ENV) == "cold":
        return _cold_boot(image, instance), f"cold boot ({BOOT_ENV}=cold)"
    try:
        return _restore(image, instance), "restored saved state"
    except (SandboxError, OSError) as exc:
        vm_qemu.stop(instance)
        return _cold_boot(image, instance), f"cold boot (restoring failed: {exc})"


def _restore(image: vm_image.VmImage, instance: vm_qemu.Instance) -> int:
    vm_qemu.create_overlay(instance.disk, image.saved_disk)
    port = vm_qemu.free_port()
    vm_qemu.start(image.machine, instance, port, vm_image.HOSTNAME, incoming=image.saved_ram)
    vm_qemu.wait_for_status(instance, "paused", _RESTORE_TIMEOUT)
    vm_qemu.hmp(instance, "cont")
    vm_qemu.wait_for_sshd(port, _RESTORE_TIMEOUT)
    wait_for_ssh("127.0.0.1", port, DEPLOY_USER, SSH_KEY_FILE, _RESTORE_TIMEOUT)
    return port


def _cold_boot(image: vm_image.VmImage, instance: vm_qemu.Instance) -> int:
    vm_qemu.create_overlay(instance.disk, image.base_disk)
    port = vm_qemu.free_port()
    vm_qemu.start(image.machine, instance, port, vm_image.HOSTNAME)
    vm_qemu.wait_for_sshd(port, _COLD_BOOT_TIMEOUT)
    wait_for_ssh("127.0.0.1", port, DEPLOY_USER, SSH_KEY_FILE, _COLD_BOOT_TIMEOUT)
    return port


def _guest_setup(repo_hostname: str) -> str:
    """The clock set to now (a restored guest resumes at the moment of the save), and the
    stand-ins' host name resolving to this machine's loopback."""
    return (f"date -u -s @{time.time():.0f} >/dev/null && "
            f"sed -i '/[[:space:]]{repo_hostname}$/d' /etc/hosts && "
            f"echo '{vm_qemu.HOST_ALIAS} {repo_hostname}' >> /etc/hosts")


def _instance(state: SandboxState | None) -> vm_qemu.Instance:
    run_dir = state.resources.get("run_dir") if state else None
    return vm_qemu.Instance(Path(run_dir) if run_dir else RUN_DIR)
