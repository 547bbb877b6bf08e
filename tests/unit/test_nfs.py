"""NFS mounts from data: validation, fstab lines and the line matcher."""

from __future__ import annotations

import re
import subprocess

import pytest

from sparkdeploy import nfs
from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError

SOURCE = "host 'h' data"
SEED = {"source": "flashstore.home.arpa:/volume1/models", "path": "/mnt/models", "fstype": "nfs4",
        "options": "rw,hard,intr,_netdev,noatime,nofail,rsize=1048576,wsize=1048576"}


def test_the_seed_mount_loses_only_intr():
    (mount,), warnings = nfs.parse_mounts([SEED], SOURCE)
    assert mount.fstab_line == ("flashstore.home.arpa:/volume1/models /mnt/models nfs4 "
                                "rw,hard,_netdev,noatime,nofail,rsize=1048576,wsize=1048576 0 0")
    assert mount.docker_requires
    assert "'intr'" in warnings[0]


def test_the_default_data_is_the_seed_without_intr():
    (mount,), warnings = nfs.parse_mounts(documented_defaults()["nfs_mounts"], SOURCE)
    assert warnings == []
    assert "intr" not in mount.options
    assert mount.path == "/mnt/models"


def test_several_mounts_are_kept_in_order():
    second = {"source": "nas:/scratch", "path": "/mnt/scratch", "docker_requires": False}
    mounts, _ = nfs.parse_mounts([SEED, second], SOURCE)
    assert [m.path for m in mounts] == ["/mnt/models", "/mnt/scratch"]
    assert mounts[1].fstab_line == "nas:/scratch /mnt/scratch nfs4 defaults 0 0"
    assert not mounts[1].docker_requires


@pytest.mark.parametrize(("entry", "key"), [
    ({**SEED, "path": "relative"}, "path"),
    ({**SEED, "path": "/mnt/a b"}, "path"),
    ({**SEED, "path": "/mnt/../etc"}, "path"),
    ({**SEED, "source": "no-export-path"}, "source"),
    ({**SEED, "fstype": "cifs"}, "fstype"),
    ({**SEED, "options": "rw;rm -rf /"}, "options"),
    ({**SEED, "docker_requires": "yes"}, "docker_requires"),
    ({**SEED, "mountpoint": "/x"}, "nfs_mounts[0]"),
])
def test_bad_entries_name_the_key(entry, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        nfs.parse_mounts([entry], SOURCE)


def test_a_path_mounted_twice_is_refused():
    with pytest.raises(ConfigError, match="mounted twice"):
        nfs.parse_mounts([SEED, SEED], SOURCE)


def test_the_matcher_finds_any_line_for_the_mount_point_and_nothing_else(tmp_path):
    (mount,), _ = nfs.parse_mounts([{**SEED, "path": "/mnt/models.v2"}], SOURCE)
    fstab = tmp_path / "fstab"
    fstab.write_text("old:/export /mnt/models.v2 nfs4 rw,intr 0 0\n"
                     "old:/export\t/mnt/models.v2\tnfs 0 0\n"
                     "# old:/export /mnt/models.v2 nfs4 rw 0 0\n"
                     "old:/export /mnt/modelsXv2 nfs4 rw 0 0\n"
                     "old:/export /mnt/models.v2/sub nfs4 rw 0 0\n")
    found = subprocess.run(["grep", "-E", mount.fstab_match, str(fstab)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert found == ["old:/export /mnt/models.v2 nfs4 rw,intr 0 0", "old:/export\t/mnt/models.v2\tnfs 0 0"]


@pytest.mark.parametrize("domain", ["home.arpa", "localdomain", "example.com"])
def test_idmap_domains(domain):
    assert nfs.idmap_domain(domain, SOURCE) == domain


@pytest.mark.parametrize("domain", ["", "bad domain", "-x", None])
def test_bad_idmap_domains(domain):
    with pytest.raises(ConfigError, match="nfs_idmap_domain"):
        nfs.idmap_domain(domain, SOURCE)
