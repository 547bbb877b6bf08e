"""Sandbox images: Debian trixie with systemd and sshd, like a fresh DGX OS install.

No registry is reachable from CI, so images are built here: ``mmdebstrap`` makes the root file
system, ``docker import`` turns it into an image, and each variant adds one committed layer.
Every tag carries a hash of all build inputs, so ``up`` reuses what is built and any change to
a package list or script builds anew. Trixie because it has what DGX OS has: docker.io 26 with
compose v2 (bookworm only has compose v1).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from sparkdeploy.sandbox.engine import docker
from sparkdeploy.sandbox.local import SandboxError, require_commands

IMAGE_REPOSITORY = "sparkdeploy-sandbox"
SUITE = "trixie"
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# What a fresh install has and the deploy does not manage (the tests exercise the rest).
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "openssh-sftp-server", "sudo", "python3",
    "cron", "ca-certificates", "curl", "gnupg", "iproute2", "iputils-ping", "procps", "less",
)
DEPLOY_USER = "cluster"

# The deploy account as DGX OS setup creates it (sudo without password, like cloud images), a
# per-sandbox SSH host key made at first boot, and accommodations for a disposable host behind
# one address: dpkg without fsync; no sshd per-source penalties (OpenSSH >= 9.8; every client
# arrives from the bridge gateway, so one client's aborted logins would lock out all, and
# Ubuntu 24.04's 9.6 has none); Docker allowed to keep IPv6 on containers' interfaces (it
# cannot switch it off: /proc/sys is read-only in a container).
_CUSTOMIZE = f"""
set -eu
useradd --create-home --shell /bin/bash {DEPLOY_USER}
printf '%s\\n' '{DEPLOY_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-{DEPLOY_USER}
chmod 0440 /etc/sudoers.d/90-{DEPLOY_USER}
install -d -m 0700 -o {DEPLOY_USER} -g {DEPLOY_USER} /home/{DEPLOY_USER}/.ssh
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/sandbox-ssh-host-keys.service <<'EOF'
[Unit]
Description=Generate this sandbox's own SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
EOF
systemctl enable sandbox-ssh-host-keys.service
echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/sandbox-unsafe-io
echo 'PerSourcePenalties no' > /etc/ssh/sshd_config.d/90-sandbox-no-penalties.conf
mkdir -p /etc/systemd/system.conf.d
printf '[Manager]\\nDefaultEnvironment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1\\n' \\
    > /etc/systemd/system.conf.d/sandbox-docker-ipv6.conf
rm -rf /var/lib/apt/lists/*
"""

# DGX OS ships a Docker engine with compose v2; trixie's docker.io only recommends the CLI.
_PREINSTALL_DOCKER = f"""
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends docker.io docker-cli docker-compose
usermod -aG docker {DEPLOY_USER}
apt-get clean
rm -rf /var/lib/apt/lists/*
"""

# variant -> the layer it adds to the bare image
VARIANTS: dict[str, str] = {
    "default": _PREINSTALL_DOCKER,
    "bare": "",
}
_SYSTEMD = '["/lib/systemd/systemd"]'
_BUILD_TIMEOUT = 1800


def image_tag(variant: str) -> str:
    """The tag of a variant's image for the current build inputs."""
    bare = _digest(SUITE, *MIRRORS, *BASE_PACKAGES, _CUSTOMIZE)
    if variant == "bare":
        return f"{IMAGE_REPOSITORY}:bare-{bare}"
    return f"{IMAGE_REPOSITORY}:{variant}-{_digest(bare, VARIANTS[variant])}"


def ensure_image(variant: str, log_file: Path) -> str:
    """The image of a variant, built only when no image with the same inputs exists."""
    if variant not in VARIANTS:
        raise SandboxError(f"unknown sandbox variant {variant!r} (allowed: {', '.join(VARIANTS)})")
    bare, image = image_tag("bare"), image_tag(variant)
    if not _exists(bare):
        _build_bare(bare, log_file)
    if not _exists(image):
        _commit_layer(bare, VARIANTS[variant], image, log_file)
    _remove_stale({image_tag(name) for name in VARIANTS})
    return image


def _digest(*inputs: str) -> str:
    return hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:16]


def _exists(image: str) -> bool:
    return docker("image", "inspect", image, check=False).returncode == 0


def import_debian(tag: str, packages: tuple[str, ...], mirrors: tuple[str, ...], log_file: Path,
                  suite: str = SUITE, extra_args: tuple[str, ...] = ()) -> None:
    """A minimal Debian image without a registry: mmdebstrap's tar stream piped straight into
    ``docker import``."""
    require_commands({"mmdebstrap": "mmdebstrap"})
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        bootstrap = subprocess.Popen(
            ["mmdebstrap", "--variant=minbase", "--format=tar", "--include=" + ",".join(packages),
             *extra_args, suite, "-", *mirrors],
            stdout=subprocess.PIPE, stderr=log)
        imported = subprocess.run(["docker", "import", "-", tag], stdin=bootstrap.stdout,
                                  stdout=log, stderr=log, timeout=_BUILD_TIMEOUT)
        bootstrap.stdout.close()
        if bootstrap.wait() != 0 or imported.returncode != 0:
            raise SandboxError(f"building the Debian image {tag} failed; see {log_file}")


def _build_bare(image: str, log_file: Path) -> None:
    rootfs = f"{IMAGE_REPOSITORY}:rootfs-build"
    import_debian(rootfs, BASE_PACKAGES, MIRRORS, log_file)
    try:
        _commit_layer(rootfs, _CUSTOMIZE, image, log_file)
    finally:
        docker("image", "rm", rootfs, check=False)


def _commit_layer(parent: str, script: str, image: str, log_file: Path) -> None:
    """Run a build script in a throwaway container of ``parent`` and commit the result."""
    builder = f"{IMAGE_REPOSITORY}-build"
    docker("rm", "-f", builder, check=False)
    try:
        result = docker("run", "--name", builder, parent, "sh", "-c", script, check=False,
                        timeout=_BUILD_TIMEOUT)
        with log_file.open("a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise SandboxError(f"building sandbox image {image} failed; see {log_file}")
        docker("commit", "--change", f"CMD {_SYSTEMD}", "--change", "ENV container=docker",
               builder, image)
    finally:
        docker("rm", "-f", builder, check=False)


def _remove_stale(current: set[str]) -> None:
    """Drop images built from older inputs (the engine refuses while a container uses one)."""
    listed = docker("image", "ls", IMAGE_REPOSITORY, "--format", "{{.Repository}}:{{.Tag}}")
    for image in set(listed.stdout.split()) - current:
        docker("image", "rm", image, check=False)
