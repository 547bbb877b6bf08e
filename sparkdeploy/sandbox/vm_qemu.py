"""One qemu process of the ``vm`` sandbox: its command line, its monitor, starting and stopping
it, and commands run in its guest over SSH.

A saved RAM state only restores into a machine with the same hardware (memory, CPUs, devices,
kernel), so the image build and every ``up`` take the command line from :func:`command`; every VM
has the stand-in cable's NICs (:class:`LinkPort`), connected or not. KVM is
used only where the CPU has vmx/svm and /dev/kvm is writable; elsewhere (PVM-style /dev/kvm
without those flags, where stock Debian kernels abort) qemu emulates the CPU (TCG).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from sparkdeploy.sandbox.local import SandboxError, run

MEMORY = "2G"
CPUS = 2
# Where slirp (qemu's user network) answers for this machine's loopback.
HOST_ALIAS = "10.0.2.2"
_HMP_PROMPT = b"(qemu) "
# PCI slots of the management NIC and the link NICs: fixed, so the guest names them the same
# way on every boot and the image can tell them apart.
MANAGEMENT_SLOT = 0x5
LINK_SLOTS = (0x6, 0x7)


@dataclass(frozen=True)
class Machine:
    """The hardware every sandbox VM gets, and the kernel it boots."""

    kernel: Path
    initrd: Path

    def hardware(self) -> list[str]:
        return [
            *accel_args(), "-machine", "q35", "-smp", str(CPUS), "-m", MEMORY,
            "-nodefaults", "-display", "none",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd),
            "-append", "root=LABEL=debvm rw console=ttyS0",
            "-device", "virtio-rng-pci",
        ]


@dataclass(frozen=True)
class LinkPort:
    """One twin of the sandbox's stand-in ConnectX-7 cable, as one VM sees it: a NIC whose frames
    travel as UDP datagrams between two qemu processes on 127.0.0.1 (nothing beyond loopback)."""

    local_port: int
    remote_port: int
    mac: str

    def args(self, twin: int) -> list[str]:
        return [
            "-netdev", (f"dgram,id=cx7{twin},local.type=inet,local.host=127.0.0.1,"
                        f"local.port={self.local_port},remote.type=inet,remote.host=127.0.0.1,"
                        f"remote.port={self.remote_port}"),
            "-device", f"virtio-net-pci,netdev=cx7{twin},mac={self.mac},addr={LINK_SLOTS[twin]:#x}",
        ]


def cable(nodes: int) -> list[tuple[LinkPort, ...]]:
    """The link NICs of each of ``nodes`` VMs: with two, twin ``t`` of one reaches twin ``t`` of
    the other (a QSFP cable between two Sparks); a single VM's lead to a port nobody reads."""
    if nodes not in (1, 2):
        raise SandboxError(f"the VM cable joins one or two VMs, not {nodes}")
    ports = [[free_udp_port() for _ in LINK_SLOTS] for _ in range(2)]
    return [tuple(LinkPort(ports[rank][twin], ports[1 - rank][twin], link_mac(rank, twin))
                  for twin in range(len(LINK_SLOTS))) for rank in range(nodes)]


def link_mac(rank: int, twin: int) -> str:
    """A locally administered address per node and twin (qemu's own prefix)."""
    return f"52:54:00:c7:{rank:02x}:{twin:02x}"


def pci_address(slot: int) -> str:
    """The guest's PCI address of the NIC in ``slot`` (as udev's ID_PATH and sysfs name it)."""
    return f"0000:00:{slot:02x}.0"


@dataclass(frozen=True)
class Instance:
    """One running VM's files: its disk overlay and what qemu writes while it runs."""

    run_dir: Path

    @property
    def disk(self) -> Path:
        return self.run_dir / "disk.qcow2"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "qemu.pid"

    @property
    def monitor(self) -> Path:
        return self.run_dir / "monitor.sock"

    @property
    def serial_log(self) -> Path:
        return self.run_dir / "serial.log"

    def pid(self) -> int | None:
        """The qemu process of this instance, when it runs."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.pidfile).encode() in cmdline else None


def accelerator(cpuinfo: Path = Path("/proc/cpuinfo"), kvm_device: str = "/dev/kvm") -> str:
    """``kvm`` where hardware virtualization is really there, else ``tcg``."""
    try:
        flags = re.search(r"\b(vmx|svm)\b", cpuinfo.read_text())
    except OSError:
        flags = None
    return "kvm" if flags and os.access(kvm_device, os.R_OK | os.W_OK) else "tcg"


def accel_args() -> list[str]:
    if accelerator() == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"]


def create_overlay(disk: Path, backing: Path) -> None:
    """A throwaway copy-on-write disk over ``backing`` (which is only ever read)."""
    disk.parent.mkdir(parents=True, exist_ok=True)
    disk.unlink(missing_ok=True)
    backing_ref = backing.name if backing.parent == disk.parent else str(backing.resolve())
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing_ref, "-F", "qcow2", str(disk)])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (qemu binds it moments later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 right now (one end of a link twin)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command(machine: Machine, instance: Instance, ssh_port: int, name: str,
            links: tuple[LinkPort, ...]) -> list[str]:
    """qemu's command line: the machine, this instance's disk and files, SSH forwarded from
    127.0.0.1 only, the link NICs."""
    if len(links) != len(LINK_SLOTS):
        raise SandboxError(f"a sandbox VM has {len(LINK_SLOTS)} link NICs, not {len(links)}")
    return [
        "qemu-system-x86_64", "-name", name, *machine.hardware(),
        "-drive", f"file={instance.disk},format=qcow2,if=virtio,cache=unsafe",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device", f"virtio-net-pci,netdev=n0,addr={MANAGEMENT_SLOT:#x}",
        *[arg for twin, link in enumerate(links) for arg in link.args(twin)],
        "-serial", f"file:{instance.serial_log}",
        "-monitor", f"unix:{instance.monitor},server,nowait",
        "-pidfile", str(instance.pidfile), "-daemonize",
    ]


def machine_key(machine: Machine) -> str:
    """What a saved state depends on: qemu's version and the command line without the values
    that change per run; a state restores only into an identical machine."""
    version = run(["qemu-system-x86_64", "--version"]).stdout.splitlines()[0]
    unconnected = tuple(LinkPort(0, 0, link_mac(0, twin)) for twin in range(len(LINK_SLOTS)))
    template = command(machine, Instance(Path("/run-dir")), 0, "name", unconnected)
    return hashlib.sha256("\0".join([version, *template]).encode()).hexdigest()[:12]


def start(machine: Machine, instance: Instance, ssh_port: int, name: str,
          links: tuple[LinkPort, ...], incoming: Path | None = None) -> int:
    """Start qemu in the background; return its pid.

    With ``incoming`` the VM restores that saved state and stays paused until ``cont``.
    """
    for stale in (instance.pidfile, instance.monitor):
        stale.unlink(missing_ok=True)
    argv = command(machine, instance, ssh_port, name, links)
    if incoming is not None:
        argv += ["-incoming", f"exec:zstd -dcq {incoming}"]
    run(argv, timeout=120)
    pid = instance.pid()
    if pid is None:
        raise SandboxError(f"qemu did not start (see {instance.serial_log})")
    return pid


def hmp(instance: Instance, command: str, timeout: float = 30.0) -> str:
    """Run one human-monitor command and return its output."""
    with socket.socket(socket.AF_UNIX) as monitor:
        monitor.settimeout(timeout)
        monitor.connect(str(instance.monitor))
        _read_to_prompt(monitor)
        monitor.sendall(command.encode() + b"\n")
        output = _read_to_prompt(monitor).decode(errors="replace")
    # qemu echoes the command line (with terminal escapes) before its output
    lines = output.replace("\r", "").split("\n")[1:]
    return "\n".join(line for line in lines if not line.startswith("(qemu)")).strip()


def wait_for_status(instance: Instance, wanted: str, timeout: float) -> None:
    """Wait until ``info status`` says ``VM status: <wanted>``."""
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        try:
            status = hmp(instance, "info status")
        except OSError as exc:  # qemu still starting, or gone
            status = str(exc)
            if instance.pid() is None:
                break
        if status == f"VM status: {wanted}":  # not "paused (inmigrate)" while restoring
            return
        time.sleep(0.2)
    raise SandboxError(f"the VM did not reach '{wanted}' within {timeout:.0f} s ({status}; "
                       f"serial log: {instance.serial_log})")


def save_state(instance: Instance, target: Path, timeout: float = 300.0) -> None:
    """Pause the VM and write its RAM and device state to ``target`` (zstd), then stop qemu."""
    hmp(instance, "stop")
    hmp(instance, f'migrate "exec:zstd -1 -T0 -q -o {target}"')
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = hmp(instance, "info migrate")
        if "Migration status: completed" in info:
            break
        if re.search(r"Migration status: (failed|cancelled)", info):
            raise SandboxError(f"saving the VM's state failed:\n{info}")
        time.sleep(0.5)
    else:
        raise SandboxError(f"saving the VM's state took more than {timeout:.0f} s")
    stop(instance)


def stop(instance: Instance, timeout: float = 20.0) -> None:
    """Stop qemu (monitor ``quit``, SIGKILL if it lingers) and forget its pid."""
    pid = instance.pid()
    if pid is not None:
        try:
            hmp(instance, "quit", timeout=5)
        except OSError:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while instance.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if instance.pid() is not None:
            os.kill(pid, signal.SIGKILL)
    for path in (instance.pidfile, instance.monitor):
        path.unlink(missing_ok=True)


def _read_to_prompt(monitor: socket.socket) -> bytes:
    data = b""
    while not data.endswith(_HMP_PROMPT):
        chunk = monitor.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def sandbox_processes(marker: Path) -> list[int]:
    """Pids of qemu processes whose command line mentions ``marker`` (an image in use, say)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"qemu-system") and str(marker).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def wait_for_sshd(port: int, timeout: float) -> None:
    """Wait until the guest's sshd sends its banner through the forwarded port.

    qemu accepts connections on the port before the guest listens and then drops them, which
    paramiko would report at length; the deploy user's login is checked after this.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                if probe.recv(16).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SandboxError(f"the VM's sshd did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def guest_run(port: int, user: str, key: Path, command: str, timeout: float = 120.0,
              check: bool = True) -> tuple[int, str]:
    """Run ``command`` as root (sudo) in the guest over its forwarded SSH port; return exit code
    and output. A fresh connection each time: sshd may restart between commands."""
    with paramiko.SSHClient() as client:
        client.set_missing_host_key_policy(paramiko.MissingHostKeyPolicy())
        client.connect("127.0.0.1", port=port, username=user, key_filename=str(key), timeout=30,
                       banner_timeout=30, auth_timeout=30, allow_agent=False, look_for_keys=False)
        _, stdout, _ = client.exec_command(f"sudo -n sh -c {shlex.quote(command)} 2>&1",
                                           timeout=timeout)
        output = stdout.read().decode(errors="replace")
        code = stdout.channel.recv_exit_status()
    if check and code != 0:
        raise SandboxError(f"in the VM, `{command}` failed (exit {code}): {output.strip()[-2000:]}")
    return code, output

