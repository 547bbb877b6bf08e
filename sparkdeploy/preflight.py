"""The seed's prerequisites checklist, read from a host in one round trip and judged here.

"Verify all 5 cache directories exist", "vllm-node-mxfp4 image built", "weights downloaded":
the seed checks these by hand before every launch. The probe is a read-only shell script; its
``key=value`` output is turned into pass/fail lines by :func:`evaluate`.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

EXPECTED_ARCH = "aarch64"
GIB = 1024**3


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Subject:
    """What the checklist looks for on one host."""

    home: str
    cache_dirs: Sequence[str]
    image: str | None
    weights_dir: str | None
    min_free_gib: int


def weights_dir(model: str | None, store_dir: str) -> str | None:
    """The Hugging Face hub directory of ``model`` (``models--org--name``) under ``store_dir``."""
    if not model:
        return None
    return posixpath.join(store_dir, "models--" + model.replace("/", "--"))


def probe_script(subject: Subject) -> str:
    """A read-only script printing one ``key=value`` line per fact; it always exits 0."""
    lines = [
        "echo arch=$(uname -m)",
        "echo docker=$(docker --version 2>/dev/null | head -n1)",
        "echo toolkit=$(dpkg-query -W -f='${Version}' nvidia-container-toolkit 2>/dev/null)",
        "echo runtimes=$(docker info --format '{{json .Runtimes}}' 2>/dev/null | tr -d ' ')",
        f"echo free_home=$(df -P -B1 {shlex.quote(subject.home)} 2>/dev/null | awk 'NR==2{{print $4}}')",
    ]
    if subject.image:
        image = shlex.quote(subject.image)
        lines.append(f"echo image=$(docker image inspect --format '{{{{.Id}}}}' {image} 2>/dev/null)")
    if subject.weights_dir:
        snapshots = shlex.quote(posixpath.join(subject.weights_dir, "snapshots"))
        lines.append(f"echo weights=$(ls -A {snapshots} 2>/dev/null | head -n1)")
    for index, directory in enumerate(subject.cache_dirs):
        lines.append(f"echo cache_{index}=$(test -d {shlex.quote(directory)} && echo yes)")
    lines.append('root=$(docker info --format "{{.DockerRootDir}}" 2>/dev/null)')
    lines.append('[ -n "$root" ] && echo free_docker=$(df -P -B1 "$root" 2>/dev/null '
                 "| awk 'NR==2{print $4}')")
    lines.append("true")
    return "\n".join(lines)


def parse_probe(lines: Sequence[str]) -> dict[str, str]:
    values = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def evaluate(subject: Subject, facts: Mapping[str, str]) -> list[Check]:
    """The checklist, in the seed's order."""
    runtimes = facts.get("runtimes", "")
    checks = [
        Check("Docker Engine", bool(facts.get("docker")), facts.get("docker") or "docker not found"),
        Check("NVIDIA Container Toolkit", bool(facts.get("toolkit")),
              f"nvidia-container-toolkit {facts['toolkit']}" if facts.get("toolkit")
              else "package not installed"),
        Check("nvidia runtime registered with Docker", '"nvidia"' in runtimes,
              "listed by docker info" if '"nvidia"' in runtimes else "not in docker info's runtimes"),
    ]
    if subject.image:
        checks.append(Check(f"image {subject.image}", bool(facts.get("image")),
                            "present" if facts.get("image") else "not built or pulled yet"))
    if subject.weights_dir:
        checks.append(Check("model weights", bool(facts.get("weights")),
                            subject.weights_dir if facts.get("weights")
                            else f"no snapshot under {subject.weights_dir}"))
    missing = [directory for index, directory in enumerate(subject.cache_dirs)
               if facts.get(f"cache_{index}") != "yes"]
    checks.append(Check("cache directories", not missing,
                        f"all {len(subject.cache_dirs)} present" if not missing
                        else "missing " + ", ".join(missing)))
    arch = facts.get("arch", "")
    checks.append(Check("architecture", arch == EXPECTED_ARCH,
                        arch if arch == EXPECTED_ARCH else f"{arch or 'unknown'}, not {EXPECTED_ARCH}"))
    for key, label in (("free_home", f"free disk under {subject.home}"),
                       ("free_docker", "free disk for Docker images")):
        if key in facts or key == "free_home":
            checks.append(_free_disk(label, facts.get(key, ""), subject.min_free_gib))
    return checks


def _free_disk(label: str, value: str, min_free_gib: int) -> Check:
    if not value.isdigit():
        return Check(label, False, "unknown")
    free_gib = int(value) / GIB
    return Check(label, free_gib >= min_free_gib, f"{free_gib:.0f} GiB free (want {min_free_gib})")
