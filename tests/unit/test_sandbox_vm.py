"""The ``vm`` sandbox backend's offline parts: its host data, image cache keys, accelerator choice,
qemu command line and guest setup."""

from __future__ import annotations

import pytest

from sparkdeploy import earlyoom, nfs
from sparkdeploy.data import check_types, documented_defaults
from sparkdeploy.sandbox import vm, vm_image, vm_qemu
from sparkdeploy.sandbox.local import SandboxError


def test_the_vm_host_mounts_the_flashstore_where_a_spark_mounts_its_model_store():
    data = vm.host_data_overrides()
    check_types("sandbox", data)
    [mount] = nfs.parse_mounts(data["nfs_mounts"], "vm host data")[0]
    [spark] = nfs.parse_mounts(documented_defaults()["nfs_mounts"], "all.py")[0]
    assert mount.source == f"127.0.0.1:{vm_image.FLASHSTORE_EXPORT}"
    assert (mount.path, mount.fstype, mount.options) == (spark.path, spark.fstype, spark.options)
    assert mount.docker_requires


def test_the_vm_host_serves_nothing_and_its_earlyoom_floors_fit_its_memory():
    data = {**documented_defaults(), **vm.host_data_overrides()}
    assert data["recipe"] is None and data["proxy_enabled"] is False
    memory_kib = int(vm_qemu.MEMORY.rstrip("G")) * 1024 * 1024
    assert data["earlyoom_memory_kill_kib"] < data["earlyoom_memory_term_kib"] < memory_kib // 4
    assert "-M" in earlyoom.arguments(data, None, "vm host data")


def test_the_vm_can_do_all_a_spark_can():
    capabilities = vm.CAPABILITIES
    assert capabilities == dict.fromkeys(
        ("host_can_mount_nfs", "host_can_write_sysctl", "host_can_lower_oom_score"), True)


def test_image_ids_name_the_variant_and_follow_the_inputs(monkeypatch):
    default = vm_image.image_id("default", "ssh-ed25519 AAAA key")
    assert default.startswith("default-") and vm_image.image_id("bare", "ssh-ed25519 AAAA key") != default
    assert vm_image.image_id("default", "ssh-ed25519 BBBB key") != default
    monkeypatch.setattr(vm_image, "VM_PACKAGES", (*vm_image.VM_PACKAGES, "htop"))
    assert vm_image.image_id("default", "ssh-ed25519 AAAA key") != default
    with pytest.raises(SandboxError, match="unknown sandbox variant"):
        vm_image.image_id("gpu", "key")


def test_the_image_preinstalls_what_the_deploy_would_install_and_the_flashstore():
    packages = (*vm_image.VM_PACKAGES, *vm_image.VARIANT_PACKAGES["default"])
    for package in ("nfs-common", "earlyoom", "nfs-kernel-server", "docker.io", "docker-cli",
                    "docker-compose", "python3-venv", "git", "curl"):
        assert package in packages
    assert "docker.io" not in vm_image.VARIANT_PACKAGES["bare"]


@pytest.mark.parametrize(("cpuinfo", "writable", "expected"), [
    ("flags\t: fpu vme sse2 vmx\n", True, "kvm"),
    ("flags\t: fpu svm sse2\n", True, "kvm"),
    ("flags\t: fpu vme sse2 vmx\n", False, "tcg"),
    # PVM: /dev/kvm is there and writable, the CPU flags are not
    ("flags\t: fpu vme sse2 hypervisor\n", True, "tcg"),
])
def test_kvm_only_with_the_cpu_flag_and_a_writable_dev_kvm(monkeypatch, tmp_path, cpuinfo, writable,
                                                           expected):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    monkeypatch.setattr(vm_qemu.os, "access", lambda path, mode: writable)
    assert vm_qemu.accelerator(tmp_path / "cpuinfo", str(tmp_path / "kvm")) == expected


def test_the_qemu_command_line_forwards_ssh_from_loopback_only(monkeypatch, tmp_path):
    monkeypatch.setattr(vm_qemu, "accelerator", lambda: "tcg")
    machine = vm_qemu.Machine(tmp_path / "vmlinuz", tmp_path / "initrd.img")
    argv = vm_qemu.command(machine, vm_qemu.Instance(tmp_path / "run"), 40022, "test",
                           vm_qemu.cable(1)[0])
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in argv[argv.index("-netdev") + 1]
    assert "guestfwd" not in " ".join(argv) and "-nic" not in argv
    assert argv[argv.index("-accel") + 1].startswith("tcg") and argv[argv.index("-cpu") + 1] == "max"
    assert argv[argv.index("-m") + 1] == "2G" and argv[argv.index("-smp") + 1] == "2"
    for option in ("-pidfile", "-monitor", "-serial", "-daemonize"):
        assert option in argv


def test_the_guest_resolves_the_stand_ins_to_qemus_host_alias_and_gets_the_clock():
    setup = vm._guest_setup("sparkdeploy-standins", "sandbox-2", vm_qemu.cable(2)[1])
    assert setup.startswith("set -eu\ndate -u -s @")
    assert f"echo '{vm_qemu.HOST_ALIAS} sparkdeploy-standins' >> /etc/hosts" in setup
    assert vm_qemu.HOST_ALIAS == "10.0.2.2"
    assert f"hostnamectl set-hostname {vm_image.HOSTNAME}-2" in setup
    for twin in range(2):
        assert f"*/0000:00:0{6 + twin}.0/*" in setup
        assert f'address {vm_qemu.link_mac(1, twin)}' in setup


def test_the_cable_joins_twin_to_twin_over_loopback_udp(monkeypatch, tmp_path):
    first, second = vm_qemu.cable(2)
    for twin in range(2):
        assert first[twin].remote_port == second[twin].local_port
        assert second[twin].remote_port == first[twin].local_port
    macs = {link.mac for link in (*first, *second)}
    assert len(macs) == 4
    monkeypatch.setattr(vm_qemu, "accelerator", lambda: "tcg")
    machine = vm_qemu.Machine(tmp_path / "vmlinuz", tmp_path / "initrd.img")
    argv = " ".join(vm_qemu.command(machine, vm_qemu.Instance(tmp_path), 1, "n", first))
    assert f"dgram,id=cx70,local.type=inet,local.host=127.0.0.1,local.port={first[0].local_port}," \
           f"remote.type=inet,remote.host=127.0.0.1,remote.port={second[0].local_port}" in argv
    assert f"virtio-net-pci,netdev=cx71,mac={first[1].mac},addr=0x7" in argv
    assert "virtio-net-pci,netdev=n0,addr=0x5" in argv
    with pytest.raises(SandboxError, match="one or two"):
        vm_qemu.cable(3)


def test_the_image_gives_dhcp_to_the_management_nic_only():
    assert "[Match]\nPath=pci-0000:00:05.0\n[Network]\nDHCP=yes" in vm_image._CUSTOMIZE
    assert "netplan.io" in vm_image.VM_PACKAGES


def test_the_stand_ins_listen_on_loopback_only(monkeypatch):
    monkeypatch.setattr(vm, "require_commands", lambda packages: None)
    assert vm.prepare() == "127.0.0.1"
    with pytest.raises(SandboxError, match="loopback"):
        vm.up("default", None, "192.168.1.10")
