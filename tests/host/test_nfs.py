"""The NFS model store: client, fstab entries, id mapping, mounts and Docker's ordering."""

from __future__ import annotations

import pytest

from sparkdeploy import nfs


@pytest.fixture(scope="module")
def mounts(host_data):
    return nfs.parse_mounts(host_data["nfs_mounts"], "host data")[0]


def _fstab_entries(host, path):
    return [line for line in host.file("/etc/fstab").content_string.splitlines()
            if not line.lstrip().startswith("#") and len(line.split()) > 1 and line.split()[1] == path]


def test_the_nfs_client_is_installed(host):
    assert host.package("nfs-common").is_installed


def test_each_mount_has_exactly_its_fstab_line_without_intr(host, mounts):
    for mount in mounts:
        entries = _fstab_entries(host, mount.path)
        assert entries == [mount.fstab_line]
        assert "intr" not in entries[0].split()[3].split(",")


def test_systemd_knows_each_mount_from_fstab(host, mounts):
    for mount in mounts:
        unit = host.check_output(f"systemd-escape -p --suffix=mount {mount.path}")
        where = host.check_output(f"systemctl show -p Where --value {unit}")
        assert where == mount.path


def test_the_nfsv4_domain_is_the_nas_domain(host, host_data):
    assert host.check_output("nfsidmap -d") == host_data["nfs_idmap_domain"]


def test_mount_points_exist(host, mounts):
    for mount in mounts:
        assert host.file(mount.path).is_directory


@pytest.mark.requires("host_can_mount_nfs")
def test_each_export_is_mounted_now(host, mounts):
    for mount in mounts:
        found = host.run(f"findmnt -n -t nfs4,nfs -o SOURCE,OPTIONS {mount.path}")
        assert found.rc == 0, f"{mount.path} is not an NFS mount"
        source, options = found.stdout.split()
        assert source == mount.source
        assert "hard" in options.split(",")


@pytest.mark.requires("host_can_mount_nfs")
def test_docker_waits_for_the_mounts_its_containers_read(host, mounts):
    required = host.check_output("systemctl show -p RequiresMountsFor --value docker.service").split()
    for mount in mounts:
        assert (mount.path in required) == mount.docker_requires
