"""Docker and the NVIDIA Container Toolkit: what a host already has and what the deploy may add.

DGX OS ships Docker and the toolkit from NVIDIA's own repositories. Adding the libnvidia-container
repository next to them risks apt's "Conflicting values set for option Signed-By" and a second
source for the same packages, so the deploy only manages the repository on hosts where it placed
it itself (its sources file carries :data:`MANAGED_MARKER`) or where the toolkit is missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sparkdeploy.data import project_path
from sparkdeploy.errors import ConfigError

TOOLKIT_PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
# CVE-2025-23266 ("NVIDIAScape") is fixed in 1.17.8; everything before it is exploitable.
SECURITY_FLOOR = (1, 17, 8)
KEYRING_PATH = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
SOURCES_PATH = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
MANAGED_MARKER = "Managed by sparkdeploy"
# Any of these means a Docker engine is installed (distribution, Docker's or a moby build).
DOCKER_ENGINE_PACKAGES = ("docker.io", "docker-ce", "moby-engine", "docker-engine")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[~+.-][0-9A-Za-z.~+-]*)?\Z")
_FETCH_KEY = ("curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor -o "
              "files/nvidia-container-toolkit-keyring.gpg")


def upstream_version(deb_version: str) -> tuple[int, int, int] | None:
    """``1.17.8-1`` -> (1, 17, 8); None when the string is not a toolkit version."""
    match = _VERSION.match(deb_version.split(":", 1)[-1])
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def meets_floor(deb_version: str) -> bool:
    version = upstream_version(deb_version)
    return version is not None and version >= SECURITY_FLOOR


def check_version(version: object, source: str) -> str:
    """The pinned Debian version of all four packages, at or above the security floor."""
    floor = ".".join(map(str, SECURITY_FLOOR))
    if not isinstance(version, str) or upstream_version(version) is None:
        raise ConfigError(source, "toolkit_version", f"{version!r} is not a package version",
                          allowed=f"a Debian version such as '{floor}-1'")
    if not meets_floor(version):
        raise ConfigError(source, "toolkit_version",
                          f"{version} is below {floor}, which fixes CVE-2025-23266 (NVIDIAScape)",
                          allowed=f"{floor}-1 or later")
    return version


def pinned_packages(version: str) -> list[str]:
    """All four toolkit packages at one version (apt refuses a partial set, toolkit#1142)."""
    return [f"{package}={version}" for package in TOOLKIT_PACKAGES]


def repo_line(url: str) -> str:
    """The one-line apt source, as NVIDIA's instructions write it (a flat repository)."""
    return f"deb [signed-by={KEYRING_PATH}] {url} /"


def repo_url_prefix(url: str) -> str:
    """The part of the URL before apt's ``$(ARCH)``, to find other files listing the same repo."""
    return url.split("$(ARCH)", 1)[0].rstrip("/")


def check_key_file(path: object, source: str) -> Path:
    """The dearmored (binary) keyring the deploy uploads; an armored or missing file is an error."""
    if not isinstance(path, str) or not path:
        raise ConfigError(source, "toolkit_repo_key_file", "must name the dearmored key file")
    resolved = project_path(path)
    try:
        head = resolved.read_bytes()[:64]
    except OSError as exc:
        raise ConfigError(source, "toolkit_repo_key_file",
                          f"cannot read {resolved}: {exc.strerror}",
                          allowed=f"a dearmored keyring, e.g. fetched with: {_FETCH_KEY}") from exc
    if head.startswith(b"-----BEGIN PGP"):
        raise ConfigError(source, "toolkit_repo_key_file",
                          f"{resolved} is ASCII-armored; apt's signed-by needs the binary form",
                          allowed=f"the output of gpg --dearmor ({_FETCH_KEY})")
    if not head or not head[0] & 0x80:
        raise ConfigError(source, "toolkit_repo_key_file",
                          f"{resolved} is not an OpenPGP keyring",
                          allowed=f"a dearmored keyring ({_FETCH_KEY})")
    return resolved


@dataclass(frozen=True)
class ToolkitSituation:
    """What the host has, read before any change, and so what the deploy does about it."""

    installed_version: str | None
    manage_repo: bool
    install_packages: bool
    install_docker: bool
    warnings: tuple[str, ...] = ()


def assess(installed: Mapping[str, Sequence[str]], sources_file_managed: bool,
           foreign_repo_files: Sequence[str], host_name: str) -> ToolkitSituation:
    """Decide from the installed packages and apt sources what to place and install.

    ``installed`` maps package names to installed versions (pyinfra's DebPackages fact),
    ``sources_file_managed`` tells whether :data:`SOURCES_PATH` carries our marker, and
    ``foreign_repo_files`` lists other apt source files already naming the toolkit repository.
    """
    warnings = []
    versions = list(installed.get("nvidia-container-toolkit") or [])
    installed_version = versions[0] if versions else None
    preinstalled = installed_version is not None and not sources_file_managed
    if preinstalled:
        if not meets_floor(installed_version):
            warnings.append(
                f"host {host_name!r}: nvidia-container-toolkit {installed_version} is below "
                f"{'.'.join(map(str, SECURITY_FLOOR))} (CVE-2025-23266); it came with the system, "
                "so upgrade it from its own repository (apt-get install --only-upgrade "
                "nvidia-container-toolkit)")
    elif foreign_repo_files:
        warnings.append(
            f"host {host_name!r}: the toolkit repository is already listed in "
            f"{', '.join(foreign_repo_files)}; not adding a second entry (apt would abort on "
            "conflicting Signed-By values)")
    install_docker = not any(installed.get(package) for package in DOCKER_ENGINE_PACKAGES)
    return ToolkitSituation(
        installed_version=installed_version,
        manage_repo=not preinstalled and not foreign_repo_files,
        install_packages=not preinstalled,
        install_docker=install_docker,
        warnings=tuple(warnings),
    )
