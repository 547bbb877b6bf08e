"""When a host's vLLM image must be (re)built, and how the build is run.

An mxfp4 build compiles vLLM, FlashInfer and CUTLASS for 25-45 minutes, so it runs only when the
image is missing or was built from another upstream commit or other build arguments. What the
image was built from is read from the image itself: the label sparkdeploy adds after its build,
or else (an image built by hand) the ``build-metadata.yaml`` upstream's build script copies in.
``-j`` is not part of that identity: it changes how fast the image is built, not what is in it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from sparkdeploy.data import upstream_checkout_dir
from sparkdeploy.errors import ConfigError
from sparkdeploy.vllm_service import VllmService

BUILD_LABEL = "io.sparkdeploy.build"
METADATA_PATH = "/workspace/build-metadata.yaml"
RUNNER_PATH = "/usr/local/lib/sparkdeploy/build-vllm-image"
_SHA_LENGTH = 40


@dataclass(frozen=True)
class ImageRecord:
    """What a host's image says about its build; ``present`` False when there is no such image."""

    present: bool
    label: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class BuildSpec:
    """One host's image build: what to build and where its checkout, log and status live."""

    image: str
    build_args: tuple[str, ...]
    repo_url: str
    commit: str
    checkout_dir: str
    jobs: int
    timeout: int
    log_dir: str

    @property
    def identity(self) -> dict[str, Any]:
        """What the image is built from; recorded on it as a label and compared on later runs."""
        return {"upstream_commit": self.commit, "build_args": list(self.build_args)}

    @property
    def label(self) -> str:
        return json.dumps(self.identity, sort_keys=True, separators=(",", ":"))

    @property
    def log_file(self) -> str:
        return f"{self.log_dir}/build-{_file_safe(self.image)}.log"

    @property
    def status_file(self) -> str:
        """Holds the build's exit code once it has finished."""
        return f"{self.log_file}.status"

    @property
    def pid_file(self) -> str:
        return f"{self.log_file}.pid"

    def build_and_copy_args(self) -> list[str]:
        """The upstream build command's arguments: ``-t`` from the recipe, ``-j`` from data."""
        return [*self.build_args, "-t", self.image, "-j", str(self.jobs)]

    def start_command(self) -> str:
        """Start the build detached from the SSH session, unless one is already running.

        The runner survives a dropped connection (new session, no terminal); the deploy follows
        its log and status file instead of holding the build's output stream open.
        """
        runner = shlex.join([RUNNER_PATH, self.checkout_dir, self.image, self.label,
                             str(self.timeout), self.status_file, "--",
                             *self.build_and_copy_args()])
        log, pid, status = (shlex.quote(p) for p in (self.log_file, self.pid_file, self.status_file))
        return (
            f"if [ -f {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; then "
            f"echo 'an image build is already running; following it'; else "
            f"rm -f {status} && "
            f"setsid nohup {runner} > {log} 2>&1 < /dev/null & echo $! > {pid}; fi"
        )


@dataclass(frozen=True)
class UpstreamCheckout:
    """The upstream repository, the commit it is pinned to and where it is checked out."""

    repo_url: str
    commit: str
    directory: str


def upstream_checkout(host_name: str, data: Mapping[str, Any]) -> UpstreamCheckout:
    """The host's pinned upstream checkout; a commit must be a full id (branches and tags move)."""
    commit = str(data["upstream_commit"])
    if len(commit) != _SHA_LENGTH or any(c not in "0123456789abcdef" for c in commit):
        raise ConfigError(f"host {host_name!r} data", "upstream_commit",
                          f"{commit!r} is not a full commit id",
                          allowed="40 lowercase hex digits (branches and tags move)")
    return UpstreamCheckout(str(data["upstream_repo_url"]), commit, upstream_checkout_dir(data))


def build_spec(service: VllmService, data: Mapping[str, Any]) -> BuildSpec | None:
    """The build for a host's recipe; None when the recipe uses its image as given."""
    if not service.recipe.build_args:
        return None
    checkout = upstream_checkout(service.host_name, data)
    for key in ("upstream_build_jobs", "upstream_build_timeout"):
        if int(data[key]) < 1:
            raise ConfigError(f"host {service.host_name!r} data", key, "must be at least 1")
    return BuildSpec(
        image=service.recipe.container,
        build_args=tuple(service.recipe.build_args),
        repo_url=checkout.repo_url,
        commit=checkout.commit,
        checkout_dir=checkout.directory,
        jobs=int(data["upstream_build_jobs"]),
        timeout=int(data["upstream_build_timeout"]),
        log_dir=str(data["upstream_build_log_dir"]).rstrip("/"),
    )


def build_reason(record: ImageRecord, spec: BuildSpec) -> str | None:
    """Why the image must be built, or None when it was built from the pinned commit and args."""
    if not record.present:
        return f"image {spec.image} is missing"
    if record.label is not None:
        built_from = record.label.get("upstream_commit")
        if built_from != spec.commit:
            return _other_commit(spec, built_from)
        if list(record.label.get("build_args") or []) != list(spec.build_args):
            return (f"image {spec.image} was built with {record.label.get('build_args')}, "
                    f"the recipe asks for {list(spec.build_args)}")
        return None
    metadata = record.metadata or {}
    built_from = metadata.get("build_script_commit")
    if built_from is None:
        return f"image {spec.image} does not record what it was built from"
    if built_from != spec.commit:
        return _other_commit(spec, built_from)
    for arg in spec.build_args:
        # upstream records each experimental flag as exp_<name>: true (--exp-mxfp4 -> exp_mxfp4)
        if arg.startswith("--exp-") and metadata.get("exp_" + arg[6:].replace("-", "_")) is not True:
            return f"image {spec.image} does not record the build flag {arg}"
    return None


def parse_image_record(lines: list[str]) -> ImageRecord:
    """Parse the ``ImageBuildRecord`` fact's output (see :mod:`sparkdeploy.serving_facts`)."""
    if not lines or lines[0].strip() == "missing":
        return ImageRecord(present=False)
    label = None
    metadata_lines = []
    for line in lines:
        if line.startswith("label "):
            try:
                value = json.loads(line[len("label "):])
            except ValueError:
                value = None
            label = value if isinstance(value, dict) else None
        elif line.startswith("metadata "):
            metadata_lines.append(line[len("metadata "):])
    metadata = None
    if metadata_lines:
        try:
            parsed = yaml.safe_load("\n".join(metadata_lines))
        except yaml.YAMLError:
            parsed = None
        metadata = parsed if isinstance(parsed, dict) else None
    return ImageRecord(present=True, label=label, metadata=metadata)


def _other_commit(spec: BuildSpec, built_from: object) -> str:
    return f"image {spec.image} was built from commit {_short(built_from)}, pinned is {_short(spec.commit)}"


def _short(commit: object) -> str:
    return str(commit)[:12] if commit else "(unknown)"


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
