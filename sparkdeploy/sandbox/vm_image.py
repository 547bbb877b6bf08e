"""The ``vm`` sandbox's image: Debian trixie from Debian's packages (kernel included), booted
once and saved, so every ``up`` restores a running system in seconds instead of booting.

Under software emulation a boot takes about a minute and each apt transaction minutes, so the
image already holds what the deploy would install but the VM test does not exercise (Docker as on
DGX OS, the NFS client, earlyoom, netplan, ...), plus the "flashstore": an NFS server in the same guest
exporting :data:`FLASHSTORE_EXPORT` to 127.0.0.1, which the sandbox host mounts as its model
store. ``debvm-create`` makes the root file system; the disk is built with ``mkfs.ext4 -d`` because
debvm's own ext4 lacks d_type, which silently drops Docker to its slow ``vfs`` driver.

Everything is cached under ``.sparkdeploy/vm-images/`` by a hash of its build inputs (package
lists, scripts, the deploy user's public key); the saved state also by the accelerator and qemu
version, since it restores only into the same machine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.sandbox import vm_qemu
from sparkdeploy.sandbox.image import BASE_PACKAGES, DEPLOY_USER, MIRRORS, SUITE
from sparkdeploy.sandbox.local import SandboxError, run
from sparkdeploy.sandbox.sshkey import wait_for_ssh

IMAGES_DIR = PROJECT_ROOT / ".sparkdeploy" / "vm-images"
HOSTNAME = "sparkdeploy-sandbox-vm"
FLASHSTORE_EXPORT = "/srv/flashstore/models"
DISK_SIZE = "8G"
# What the deploy would otherwise install and the VM test does not exercise, and the flashstore.
VM_PACKAGES = (*BASE_PACKAGES, "nfs-common", "nfs-kernel-server", "earlyoom", "python3-venv",
               "git", "netplan.io")
# variant -> what it adds (the container backend's variants: "bare" lets the deploy install Docker)
VARIANT_PACKAGES: dict[str, tuple[str, ...]] = {
    "default": ("docker.io", "docker-cli", "docker-compose"),
    "bare": (),
}
_BUILD_TIMEOUT = 1800
_FIRST_BOOT_TIMEOUT = 900.0

# Run inside the new root file system. The deploy account as DGX OS setup creates it, root
# locked (debvm leaves it without a password); dpkg and apt without what costs minutes under
# emulation (fsync, initramfs rebuilds: the kernel and initrd are passed from outside, man-db,
# translations); DHCP on the management NIC only (debvm's default takes every en* NIC, and
# the stand-in cable's NICs, with no DHCP server, would hold network-online.target for two
# minutes: they are the deploy's to configure); apt's daily timers off, since after a restore
# the clock jumps ahead and they would fire mid-deploy holding dpkg's lock; no sshd per-source
# penalties (every client arrives from qemu's one host address); the flashstore export.
_CUSTOMIZE = f"""
set -eu
useradd --create-home --shell /bin/bash {DEPLOY_USER}
if getent group docker >/dev/null; then usermod -aG docker {DEPLOY_USER}; fi
printf '%s\\n' '{DEPLOY_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-{DEPLOY_USER}
chmod 0440 /etc/sudoers.d/90-{DEPLOY_USER}
install -d -m 0700 -o {DEPLOY_USER} -g {DEPLOY_USER} /home/{DEPLOY_USER}/.ssh
printf '%s\\n' "$SANDBOX_PUBLIC_KEY" > /home/{DEPLOY_USER}/.ssh/authorized_keys
chown {DEPLOY_USER}: /home/{DEPLOY_USER}/.ssh/authorized_keys
chmod 0600 /home/{DEPLOY_USER}/.ssh/authorized_keys
usermod -p '*' root
echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/sandbox-unsafe-io
sed -i 's/^update_initramfs=.*/update_initramfs=no/' /etc/initramfs-tools/update-initramfs.conf
rm -f /var/lib/man-db/auto-update
echo 'Acquire::Languages "none";' > /etc/apt/apt.conf.d/90sandbox-no-translations
cat > /etc/systemd/network/20-wired.network <<'NETWORK'
[Match]
Path=pci-{vm_qemu.pci_address(vm_qemu.MANAGEMENT_SLOT)}
[Network]
DHCP=yes
[DHCP]
UseDomains=yes
NETWORK
systemctl disable apt-daily.timer apt-daily-upgrade.timer
echo 'PerSourcePenalties no' > /etc/ssh/sshd_config.d/90-sandbox-no-penalties.conf
install -d -m 0755 {FLASHSTORE_EXPORT}
echo 'The sandbox flashstore: an NFS export standing in for the NAS model store.' \\
    > {FLASHSTORE_EXPORT}/README
mkdir -p /etc/exports.d
echo '{FLASHSTORE_EXPORT} 127.0.0.1(rw,sync,no_subtree_check)' > /etc/exports.d/flashstore.exports
systemctl enable nfs-server.service
"""


@dataclass(frozen=True)
class VmImage:
    """A built image: kernel, initrd, the base disk, and (once saved) a running system."""

    directory: Path

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def base_disk(self) -> Path:
        return self.directory / "base.qcow2"

    @property
    def machine(self) -> vm_qemu.Machine:
        return vm_qemu.Machine(self.kernel, self.initrd)

    @property
    def snapshot_dir(self) -> Path:
        """The saved system for this machine: the disk as it was (``disk.qcow2``, never written
        again) and the RAM (``ram.zst``)."""
        return self.directory / f"saved-{vm_qemu.machine_key(self.machine)}"

    @property
    def saved_disk(self) -> Path:
        return self.snapshot_dir / "disk.qcow2"

    @property
    def saved_ram(self) -> Path:
        return self.snapshot_dir / "ram.zst"

    def timings(self) -> dict[str, float]:
        """Seconds each build step took (image build, first boot, state save)."""
        try:
            return json.loads((self.directory / "timings.json").read_text())
        except (OSError, ValueError):
            return {}

    def _record(self, **timings: float) -> None:
        (self.directory / "timings.json").write_text(json.dumps({**self.timings(), **timings},
                                                                indent=2))


def image_id(variant: str, public_key: str) -> str:
    """The image directory's name for the current build inputs."""
    if variant not in VARIANT_PACKAGES:
        raise SandboxError(f"unknown sandbox variant {variant!r} "
                           f"(allowed: {', '.join(VARIANT_PACKAGES)})")
    packages = (*VM_PACKAGES, *VARIANT_PACKAGES[variant])
    return f"{variant}-{_digest(SUITE, *MIRRORS, *packages, _CUSTOMIZE, public_key, DISK_SIZE)}"


def ensure_image(variant: str, public_key: str, private_key: Path, log_file: Path) -> VmImage:
    """The variant's image with a saved running system, built and saved only when missing."""
    image = VmImage(IMAGES_DIR / image_id(variant, public_key))
    if not image.base_disk.is_file():
        _build(image, variant, public_key, log_file)
    if not image.saved_ram.is_file():
        _save_running_system(image, private_key, log_file)
    _remove_stale({image_id(name, public_key) for name in VARIANT_PACKAGES})
    _remove_stale_states(image)
    return image


def _build(image: VmImage, variant: str, public_key: str, log_file: Path) -> None:
    """debvm-create → root file system → ext4 with d_type → qcow2, kernel and initrd beside it."""
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=IMAGES_DIR) as tmp:
        work = Path(tmp)
        script = work / "customize.sh"
        script.write_text(f"SANDBOX_PUBLIC_KEY='{public_key}'\n{_CUSTOMIZE}")
        packages = (*VM_PACKAGES, *VARIANT_PACKAGES[variant])
        _logged(["debvm-create", "--release", SUITE, "--hostname", HOSTNAME,
                 "--skip", "ext4,autologin", "--output", str(work / "rootfs.tar"), "--",
                 "--include=" + ",".join(packages),
                 f"--customize-hook=upload {script} /root/sandbox-customize.sh",
                 '--customize-hook=chroot "$1" sh /root/sandbox-customize.sh',
                 '--customize-hook=rm "$1/root/sandbox-customize.sh"',
                 *MIRRORS], log_file, "building the VM's root file system")
        rootfs_seconds = time.monotonic() - started
        rootfs = work / "rootfs"
        rootfs.mkdir()
        _logged(["tar", "-C", str(rootfs), "--numeric-owner", "--xattrs", "--xattrs-include=*",
                 "-xpf", str(work / "rootfs.tar")], log_file, "unpacking the root file system")
        (work / "rootfs.tar").unlink()
        staged = work / "image"
        staged.mkdir()
        for pattern, name in (("vmlinuz-*", "vmlinuz"), ("initrd.img-*", "initrd.img")):
            found = sorted((rootfs / "boot").glob(pattern))
            if len(found) != 1:
                raise SandboxError(f"expected one /boot/{pattern} in the VM image, found "
                                   f"{[path.name for path in found]}")
            shutil.copyfile(found[0], staged / name)
        _logged(["mkfs.ext4", "-q", "-L", "debvm", "-d", str(rootfs), str(work / "disk.ext4"),
                 DISK_SIZE], log_file, "making the VM's ext4 disk")
        shutil.rmtree(rootfs)
        _logged(["qemu-img", "convert", "-O", "qcow2", str(work / "disk.ext4"),
                 str(staged / "base.qcow2")], log_file, "converting the disk to qcow2")
        shutil.rmtree(image.directory, ignore_errors=True)
        staged.rename(image.directory)
    image._record(image_build=time.monotonic() - started, rootfs=rootfs_seconds)


def _save_running_system(image: VmImage, private_key: Path, log_file: Path) -> None:
    """Boot the image once on a new overlay, wait until the system is up, save RAM and disk."""
    shutil.rmtree(image.snapshot_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=".saving-", dir=image.directory) as tmp:
        instance = vm_qemu.Instance(Path(tmp))
        vm_qemu.create_overlay(instance.disk, image.base_disk)
        port = vm_qemu.free_port()
        started = time.monotonic()
        vm_qemu.start(image.machine, instance, port, f"{HOSTNAME}-save", vm_qemu.cable(1)[0])
        try:
            vm_qemu.wait_for_sshd(port, _FIRST_BOOT_TIMEOUT)
            wait_for_ssh("127.0.0.1", port, DEPLOY_USER, private_key, 60)
            ssh_ready = time.monotonic() - started
            _, state = vm_qemu.guest_run(port, DEPLOY_USER, private_key,
                                         "systemctl is-system-running --wait", check=False,
                                         timeout=_FIRST_BOOT_TIMEOUT)
            if state.strip() != "running":
                _, failed = vm_qemu.guest_run(port, DEPLOY_USER, private_key,
                                              "systemctl list-units --failed --plain --no-legend",
                                              check=False)
                raise SandboxError(f"the VM image booted {state.strip()!r}: {failed.strip()} "
                                   f"(its console is in {log_file})")
            booted = time.monotonic() - started
            vm_qemu.guest_run(port, DEPLOY_USER, private_key, "sync")
            saving = time.monotonic()
            vm_qemu.save_state(instance, instance.run_dir / "ram.zst")
            saved = time.monotonic() - saving
        except BaseException:
            with log_file.open("a") as log:
                log.write(instance.serial_log.read_text(errors="replace")
                          if instance.serial_log.exists() else "(no serial log)\n")
            vm_qemu.stop(instance)
            raise
        # The disk goes first: ram.zst marks a complete saved system.
        image.snapshot_dir.mkdir()
        instance.disk.rename(image.saved_disk)
        _rebase(image.saved_disk, image.base_disk)
        (instance.run_dir / "ram.zst").rename(image.saved_ram)
    image._record(first_boot_ssh=ssh_ready, first_boot_running=booted, state_save=saved,
                  state_bytes=image.saved_ram.stat().st_size)


def _rebase(disk: Path, backing: Path) -> None:
    """Point an overlay at its backing file by a path relative to itself (no data copied)."""
    relative = Path("..") / backing.name
    run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", str(relative), "-F", "qcow2", str(disk)])


def _remove_stale(current: set[str]) -> None:
    """Drop images built from older inputs, except any a running VM still reads."""
    if not IMAGES_DIR.is_dir():
        return
    for directory in IMAGES_DIR.iterdir():
        if (directory.is_dir() and not directory.name.startswith(".")
                and directory.name not in current and not vm_qemu.sandbox_processes(directory)):
            shutil.rmtree(directory, ignore_errors=True)


def _remove_stale_states(image: VmImage) -> None:
    """Drop states saved for another machine (qemu upgraded, say), unless a VM may restore
    from one: running VMs' disks are overlays of a saved disk."""
    if vm_qemu.sandbox_processes(image.directory):
        return
    for directory in image.directory.glob("saved-*"):
        if directory != image.snapshot_dir:
            shutil.rmtree(directory, ignore_errors=True)


def _logged(command: list[str], log_file: Path, what: str) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                    timeout=_BUILD_TIMEOUT)
        except FileNotFoundError as exc:
            raise SandboxError(f"{command[0]} is not installed") from exc
    if result.returncode != 0:
        raise SandboxError(f"{what} failed (exit {result.returncode}); see {log_file}")


def _digest(*inputs: str) -> str:
    return hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:16]
