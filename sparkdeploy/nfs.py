"""NFS mounts from host data: validated, rendered as fstab lines, ordered before Docker.

The seed mounts the model store with ``nofail``: boot does not wait for it, so Docker may start
first and a container bind-mounts the empty mount point (the moby#4213 pattern). The deploy
therefore makes docker.service require the mounts that containers read from.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkdeploy.errors import ConfigError

FSTYPES = ("nfs4", "nfs")
DOCKER_DROPIN_PATH = "/etc/systemd/system/docker.service.d/10-sparkdeploy-nfs.conf"
# nfs-common's mount of the kernel's RPC pipe file system (NFSv4 id mapping, gssd).
RPC_PIPEFS_UNIT = "run-rpc_pipefs.mount"
# Accepted but ignored by the kernel since 2.6.25.
OBSOLETE_OPTIONS = ("intr", "nointr")
_KEYS = {"source", "path", "fstype", "options", "docker_requires"}
_SOURCE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:/\S*\Z")
_OPTION = re.compile(r"^[A-Za-z0-9_.\-]+(=[A-Za-z0-9_.:/\-]+)?\Z")
_MOUNT_POINT = re.compile(r"^(/[A-Za-z0-9_.\-]+)+\Z")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?\Z")


@dataclass(frozen=True)
class NfsMount:
    source: str
    path: str
    fstype: str
    options: tuple[str, ...]
    docker_requires: bool

    @property
    def fstab_line(self) -> str:
        return f"{self.source} {self.path} {self.fstype} {','.join(self.options)} 0 0"

    @property
    def fstab_match(self) -> str:
        """Extended regex for any non-comment fstab line mounting something on this path."""
        return rf"^[^#[:space:]]+[[:space:]]+{self.path.replace('.', '[.]')}[[:space:]]"


def parse_mounts(value: Any, source: str) -> tuple[list[NfsMount], list[str]]:
    """The mounts in ``nfs_mounts`` and warnings about options the deploy dropped."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(source, "nfs_mounts", f"{value!r} is not a list of mounts")
    mounts, warnings, paths = [], [], set()
    for index, entry in enumerate(value):
        key = f"nfs_mounts[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(source, key, f"{entry!r} is not a mapping",
                              allowed=f"keys {', '.join(sorted(_KEYS))}")
        unknown = set(entry) - _KEYS
        if unknown:
            raise ConfigError(source, key, f"unknown keys {', '.join(sorted(unknown))}",
                              allowed=", ".join(sorted(_KEYS)))
        mount = _parse_mount(entry, key, source, warnings)
        if mount.path in paths:
            raise ConfigError(source, key, f"{mount.path} is mounted twice")
        paths.add(mount.path)
        mounts.append(mount)
    return mounts, warnings


def idmap_domain(value: Any, source: str) -> str:
    if not isinstance(value, str) or not _DOMAIN.match(value):
        raise ConfigError(source, "nfs_idmap_domain", f"{value!r} is not a domain name",
                          allowed="the NFSv4 domain the NAS uses, e.g. 'home.arpa'")
    return value


def _parse_mount(entry: Mapping[str, Any], key: str, source: str, warnings: list[str]) -> NfsMount:
    export = entry.get("source")
    if not isinstance(export, str) or not _SOURCE.match(export):
        raise ConfigError(source, f"{key}.source", f"{export!r} is not an NFS export",
                          allowed="SERVER:/path, e.g. 'flashstore.home.arpa:/volume1/models'")
    path = entry.get("path")
    if (not isinstance(path, str) or not _MOUNT_POINT.match(path)
            or posixpath.normpath(path) != path):
        raise ConfigError(source, f"{key}.path", f"{path!r} is not a mount point",
                          allowed="an absolute path of letters, digits, '.', '_', '-', "
                          "e.g. '/mnt/models'")
    fstype = entry.get("fstype", "nfs4")
    if fstype not in FSTYPES:
        raise ConfigError(source, f"{key}.fstype", f"{fstype!r} is not an NFS type",
                          allowed=", ".join(FSTYPES))
    raw = entry.get("options", "defaults")
    if not isinstance(raw, str):
        raise ConfigError(source, f"{key}.options", f"{raw!r} is not an option string",
                          allowed="comma-separated fstab options")
    options = []
    for option in (part.strip() for part in raw.split(",")):
        if option in OBSOLETE_OPTIONS:
            warnings.append(f"{source}: {key}.options: dropped {option!r}, which the kernel has "
                            "ignored since 2.6.25")
            continue
        if not _OPTION.match(option):
            raise ConfigError(source, f"{key}.options", f"{option!r} is not a mount option")
        options.append(option)
    if not options:
        options = ["defaults"]
    requires = entry.get("docker_requires", True)
    if not isinstance(requires, bool):
        raise ConfigError(source, f"{key}.docker_requires", f"{requires!r} is not a boolean")
    return NfsMount(export, path, fstype, tuple(options), requires)
