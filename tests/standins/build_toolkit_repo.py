#!/usr/bin/env python3
"""Build the STAND-IN NVIDIA Container Toolkit apt repository for the sandbox.

Four packages named and versioned like NVIDIA's (``nvidia-container-toolkit``,
``nvidia-container-toolkit-base``, ``libnvidia-container-tools``, ``libnvidia-container1``, with
the real packages' Depends between them), whose programs work without a GPU (see
``nvidia-container-toolkit/``). They go into a flat repository laid out like NVIDIA's
(``stable/deb/<arch>/``), signed with a key generated here on first use (never committed):
``Release``, ``InRelease`` and ``Release.gpg``, so apt verifies it as it verifies the real one.

Usage: build_toolkit_repo.py OUT_DIR
Writes OUT_DIR/repo/ (serve it over HTTP) and OUT_DIR/nvidia-container-toolkit-keyring.gpg (the
dearmored public key, for apt's signed-by). Rebuilds only when this script or a payload changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAYLOAD = HERE / "nvidia-container-toolkit"
VERSION = "1.17.8-1"
KEY_NAME = "sparkdeploy stand-in NVIDIA toolkit repository <standins@sparkdeploy.invalid>"
KEYRING = "nvidia-container-toolkit-keyring.gpg"


@dataclass(frozen=True)
class Package:
    name: str
    description: str
    depends: tuple[str, ...] = ()
    # path in the package -> payload file name
    files: dict[str, str] = field(default_factory=dict)
    # symlink path -> target
    links: dict[str, str] = field(default_factory=dict)
    conffiles: tuple[str, ...] = ()


PACKAGES = (
    Package("libnvidia-container1", "NVIDIA container runtime library (stand-in, empty)"),
    Package("libnvidia-container-tools", "NVIDIA container runtime library tools (stand-in)",
            depends=(f"libnvidia-container1 (>= {VERSION})",),
            files={"usr/bin/nvidia-container-cli": "nvidia-container-cli"}),
    Package("nvidia-container-toolkit-base", "NVIDIA Container Toolkit base (stand-in)",
            depends=("python3",),
            files={"usr/bin/nvidia-ctk": "nvidia-ctk",
                   "usr/bin/nvidia-container-runtime": "nvidia-container-runtime",
                   "etc/nvidia-container-runtime/config.toml": "config.toml"},
            conffiles=("/etc/nvidia-container-runtime/config.toml",)),
    Package("nvidia-container-toolkit", "NVIDIA Container toolkit (stand-in)",
            depends=(f"nvidia-container-toolkit-base (= {VERSION})",
                     f"libnvidia-container-tools (>= {VERSION})",
                     "libnvidia-container-tools (<< 2.0.0)"),
            files={"usr/bin/nvidia-container-runtime-hook": "nvidia-container-runtime-hook"},
            links={"usr/bin/nvidia-container-toolkit": "nvidia-container-runtime-hook"}),
)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    gnupg = out / "gnupg"
    if not (gnupg / "pubring.kbx").exists():
        _generate_key(gnupg)
    public_key = _gpg(gnupg, "--export", stdout=True)
    (out / KEYRING).write_bytes(public_key)
    stamp, inputs = out / ".inputs", _inputs_digest(public_key)
    if stamp.exists() and stamp.read_text() == inputs:
        return
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    repo = out / "repo" / "stable" / "deb" / arch
    shutil.rmtree(out / "repo", ignore_errors=True)
    repo.mkdir(parents=True)
    staging = out / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    for package in PACKAGES:
        _build_deb(package, arch, staging / package.name, repo)
    shutil.rmtree(staging)
    _index_and_sign(repo, gnupg)
    stamp.write_text(inputs)


def _inputs_digest(public_key: bytes) -> str:
    digest = hashlib.sha256(public_key + Path(__file__).read_bytes())
    for path in sorted(PAYLOAD.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _build_deb(package: Package, arch: str, root: Path, repo: Path) -> None:
    for dest, source in package.files.items():
        target = root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PAYLOAD / source, target)
        target.chmod(0o755 if dest.startswith("usr/bin/") else 0o644)
    for link, target in package.links.items():
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(target)
    doc = root / "usr/share/doc" / package.name / "README.stand-in"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("Stand-in package built by sparkdeploy's tests (tests/standins/); it only\n"
                   "imitates NVIDIA's package so the deploy can be tested without a GPU.\n")
    control = [f"Package: {package.name}", f"Version: {VERSION}", f"Architecture: {arch}",
               "Maintainer: sparkdeploy tests <standins@sparkdeploy.invalid>",
               "Section: utils", "Priority: optional"]
    if package.depends:
        control.append("Depends: " + ", ".join(package.depends))
    control.append(f"Description: {package.description}")
    debian = root / "DEBIAN"
    debian.mkdir(parents=True)
    (debian / "control").write_text("\n".join(control) + "\n")
    if package.conffiles:
        (debian / "conffiles").write_text("\n".join(package.conffiles) + "\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root),
                    str(repo / f"{package.name}_{VERSION}_{arch}.deb")],
                   check=True, capture_output=True)


def _index_and_sign(repo: Path, gnupg: Path) -> None:
    """A flat repository (``deb URL /``): Packages, Release, InRelease and Release.gpg."""
    packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo, check=True,
                              capture_output=True).stdout
    (repo / "Packages").write_bytes(packages)
    subprocess.run(["gzip", "-9nk", "Packages"], cwd=repo, check=True)
    release = subprocess.run(
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=sparkdeploy-standin",
         "-o", "APT::FTPArchive::Release::Label=NVIDIA Container Toolkit (stand-in)",
         "release", "."], cwd=repo, check=True, capture_output=True).stdout
    (repo / "Release").write_bytes(release)
    _gpg(gnupg, "--clearsign", "--output", str(repo / "InRelease"), str(repo / "Release"))
    _gpg(gnupg, "--detach-sign", "--armor", "--output", str(repo / "Release.gpg"),
         str(repo / "Release"))
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(gnupg)},
                   check=False)


def _generate_key(gnupg: Path) -> None:
    shutil.rmtree(gnupg, ignore_errors=True)
    gnupg.mkdir(mode=0o700, parents=True)
    _gpg(gnupg, "--passphrase", "", "--quick-generate-key", KEY_NAME, "ed25519", "sign", "never")


def _gpg(gnupg: Path, *args: str, stdout: bool = False) -> bytes:
    result = subprocess.run(["gpg", "--batch", "--yes", "--quiet", "--pinentry-mode", "loopback",
                             *args], env={**os.environ, "GNUPGHOME": str(gnupg)},
                            capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(f"gpg {args[0]} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout if stdout else b""


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[2])
    main(Path(sys.argv[1]))
