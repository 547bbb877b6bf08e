"""Stand-ins for what a Spark fetches from registries and GitHub, built here and put in the sandbox.

The sandbox reaches no registry, so the images the deploy runs are built on this machine's Docker
engine and loaded into the sandbox's inner engine under the exact names the compose files use:
LiteLLM from PyPI's ``litellm[proxy]``, Postgres from Debian's package, and the runtime the
stand-in upstream's Dockerfiles build on (the stand-in model server installed as ``vllm``).
Upstream's prebuilt runner images (``eugr/spark-vllm:latest``, its B12X sibling, and a later
"nightly" for tests that move a pin) are built on that runtime and pushed to the stand-in
registry, where the stand-in upstream's ``build-and-copy.sh`` pulls them as the real one pulls
from Docker Hub. The upstream repository is a local git repository made from
``tests/standins/upstream`` with fixed author and dates, so its commit ids are stable and
``group_data/sandbox.py`` can pin one. Every image carries a hash of its inputs: nothing is
rebuilt, reloaded or pushed again unless an input changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkdeploy.data import PROJECT_ROOT, documented_defaults
from sparkdeploy.sandbox import registry_standin
from sparkdeploy.sandbox.engine import docker
from sparkdeploy.sandbox.image import import_debian
from sparkdeploy.sandbox.local import SandboxError, require_commands, run

STANDINS_DIR = PROJECT_ROOT / "tests" / "standins"
UPSTREAM_SOURCE = STANDINS_DIR / "upstream"
WORK_DIR = PROJECT_ROOT / ".sparkdeploy" / "standins"
LOG_FILE = WORK_DIR / "build.log"
UPSTREAM_REPO = WORK_DIR / "spark-vllm-docker.git"
# Where the sandbox keeps the stand-in upstream repository (group_data/sandbox.py points here).
SANDBOX_REPO_DIR = "/srv/sparkdeploy-standins/spark-vllm-docker.git"
RUNTIME_IMAGE = "sparkdeploy-standins/vllm-runtime:current"
# Upstream's prebuilt runner images: local tag -> where the stand-in registry serves it.
PREBUILT_IMAGES = {
    "sparkdeploy-standins/spark-vllm:nightly-1": "eugr/spark-vllm:latest",
    "sparkdeploy-standins/spark-vllm:nightly-2": "eugr/spark-vllm:nightly-2",
    "sparkdeploy-standins/spark-vllm-b12x:nightly-1": "eugr/spark-vllm-b12x:latest",
}
REGISTRY_DIGESTS = WORK_DIR / "registry" / "digests.json"
LITELLM_VERSION = "1.106.2"
HASH_LABEL = "io.sparkdeploy.standin-inputs"

_SUITE = "trixie"
_MIRRORS = (
    f"deb http://deb.debian.org/debian {_SUITE} main",
    f"deb http://deb.debian.org/debian-security {_SUITE}-security main",
)
_BASE_REPOSITORY = "sparkdeploy-standins/debian"
_BUILD_TIMEOUT = 1800
# Fixed identity and dates: the same files always give the same commit ids.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "sparkdeploy stand-in", "GIT_AUTHOR_EMAIL": "standin@sparkdeploy.invalid",
    "GIT_COMMITTER_NAME": "sparkdeploy stand-in",
    "GIT_COMMITTER_EMAIL": "standin@sparkdeploy.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
# (commit date, message, README text added by that commit); the first commit has the files as-is.
_HISTORY = (
    ("2026-08-14T12:00:00Z", "Stand-in upstream: mxfp4 build with build metadata", None),
    ("2026-08-21T12:00:00Z", "Stand-in upstream: a later revision",
     "\nRevision 2: a later upstream commit, for tests that move the pinned commit.\n"),
)


@dataclass(frozen=True)
class StandinImage:
    """One image to build: its Dockerfile (relative to tests/standins), tag and build args."""

    tag: str
    dockerfile: str
    build_args: Mapping[str, str]

    def inputs_hash(self, base: str) -> str:
        """Hash of everything the image is built from (its directory's files included)."""
        context = STANDINS_DIR / Path(self.dockerfile).parent
        files = sorted(path for path in context.rglob("*") if path.is_file())
        if self.dockerfile.startswith("images/vllm-runtime/"):
            files.append(STANDINS_DIR / "model_server.py")
        parts = [base, self.tag, *(f"{k}={v}" for k, v in sorted(self.build_args.items()))]
        parts += [f"{path.relative_to(STANDINS_DIR)}:{path.stat().st_mode & 0o111}:"
                  + hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
        return _digest(*parts)


def sandbox_data() -> dict[str, Any]:
    """The data a sandbox host gets from group_data (all.py overridden by sandbox.py)."""
    overrides = runpy.run_path(str(PROJECT_ROOT / "group_data" / "sandbox.py"))
    return {**documented_defaults(),
            **{key: value for key, value in overrides.items() if not key.startswith("_")}}


def standin_images(data: Mapping[str, Any] | None = None) -> list[StandinImage]:
    """The images the sandbox needs, under the names its data (and so its compose files) use;
    the runtime first: the prebuilt images are built on it."""
    data = data or sandbox_data()
    prebuilt = [StandinImage(tag, "images/vllm-prebuilt/Dockerfile",
                             {"RUNTIME": RUNTIME_IMAGE, "FLAVOR": "b12x" if "b12x" in tag else "default",
                              "REVISION": tag.rsplit("-", 1)[1]})
                for tag in PREBUILT_IMAGES]
    return [
        StandinImage(RUNTIME_IMAGE, "images/vllm-runtime/Dockerfile", {}),
        StandinImage(data["proxy_image"], "images/litellm/Dockerfile",
                     {"LITELLM_VERSION": LITELLM_VERSION}),
        StandinImage(data["proxy_db_image"], "images/postgres/Dockerfile", {}),
        *prebuilt,
    ]


Progress = Callable[[str], None]


def ensure_images(log_file: Path = LOG_FILE, progress: Progress = lambda _line: None) -> list[str]:
    """Build every stand-in image whose inputs changed; return their tags."""
    base = _ensure_base(log_file, progress)
    tags = []
    runtime_hash = ""
    for image in standin_images():
        # an image built on the runtime changes with it
        wanted = image.inputs_hash(base + runtime_hash if image.tag in PREBUILT_IMAGES else base)
        if _label(image.tag) != wanted:
            started = time.monotonic()
            progress(f"building stand-in image {image.tag} (log: {log_file})")
            _build(image, base, wanted, log_file)
            progress(f"built {image.tag} in {time.monotonic() - started:.0f} s")
        if image.tag == RUNTIME_IMAGE:
            runtime_hash = wanted
        tags.append(image.tag)
    return tags


def publish_prebuilt(address: str, progress: Progress = lambda _line: None) -> dict[str, str]:
    """Push the prebuilt stand-ins to the registry listening on ``address`` (when their image
    changed or the registry lacks them); return registry path -> digest, also kept for tests."""
    recorded = registry_digests()
    host = registry_standin.certs_dir_name()
    for tag, path in PREBUILT_IMAGES.items():
        image_id = _image_id(tag)
        entry = recorded.get(path) or {}
        if entry.get("image_id") == image_id and registry_standin.has_tag(path, entry.get("digest")):
            continue
        progress(f"pushing {tag} to the stand-in registry as {host}/{path}")
        with tempfile.TemporaryDirectory(prefix="standin-push-") as tmp:
            archive = Path(tmp) / "image.tar"
            docker("save", "-o", str(archive), tag, timeout=_BUILD_TIMEOUT)
            digest = registry_standin.push(archive, f"{host}/{path}", address)
        recorded[path] = {"image_id": image_id, "digest": digest}
    REGISTRY_DIGESTS.parent.mkdir(parents=True, exist_ok=True)
    REGISTRY_DIGESTS.write_text(json.dumps(recorded, indent=1, sort_keys=True))
    return {path: entry["digest"] for path, entry in recorded.items()}


def registry_digests() -> dict[str, dict[str, str]]:
    """What :func:`publish_prebuilt` last pushed: registry path -> image id and digest."""
    try:
        return json.loads(REGISTRY_DIGESTS.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def ensure_upstream_repo(dest: Path = UPSTREAM_REPO) -> list[str]:
    """(Re)create the bare stand-in upstream repository; return its commit ids, oldest first."""
    require_commands({"git": "git"})
    with tempfile.TemporaryDirectory(prefix="standin-upstream-") as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(UPSTREAM_SOURCE, work)
        _git(work, "init", "-q", "-b", "main")
        commits = []
        for date, message, readme_addition in _HISTORY:
            if readme_addition:
                with (work / "README.md").open("a") as readme:
                    readme.write(readme_addition)
            _git(work, "add", "-A")
            _git(work, "commit", "-q", "-m", message,
                 env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
            commits.append(_git(work, "rev-parse", "HEAD").strip())
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _git(Path(tmp), "clone", "-q", "--bare", str(work), str(dest))
    return commits


def install_into_sandbox(container: str, registry_address: str | None,
                         log_file: Path = LOG_FILE, progress: Progress = lambda _line: None) -> None:
    """Give a running sandbox container the stand-in images and upstream repository.

    Images are loaded into its inner engine only when missing there or different; the prebuilt
    ones go to the stand-in registry instead (the sandbox pulls them); the repository is copied
    to ``SANDBOX_REPO_DIR``, readable by every account.
    """
    tags = ensure_images(log_file, progress)
    if registry_address:
        publish_prebuilt(registry_address, progress)
    if docker("exec", container, "sh", "-c", "command -v docker", check=False).returncode == 0:
        _load_images(container, [tag for tag in tags if tag not in PREBUILT_IMAGES], progress)
    else:
        progress(f"{container} has no Docker engine yet: its images are loaded by "
                 "`sparkdeploy standins install` once a deploy has installed one")
    ensure_upstream_repo(UPSTREAM_REPO)
    parent = str(Path(SANDBOX_REPO_DIR).parent)
    docker("exec", container, "sh", "-c", f"rm -rf {SANDBOX_REPO_DIR} && mkdir -p {parent}")
    docker("cp", str(UPSTREAM_REPO), f"{container}:{SANDBOX_REPO_DIR}")
    docker("exec", container, "sh", "-c",
           f"chown -R root:root {SANDBOX_REPO_DIR} && chmod -R a+rX {SANDBOX_REPO_DIR}")


def _load_images(container: str, tags: list[str], progress: Progress) -> None:
    """``docker save`` here piped into ``docker load`` inside the sandbox, for changed images."""
    missing = [tag for tag in tags if _image_id(tag) != _image_id(tag, container)]
    if not missing:
        return
    progress(f"loading {', '.join(missing)} into {container}")
    save = subprocess.Popen(["docker", "save", *missing], stdout=subprocess.PIPE)
    load = subprocess.run(["docker", "exec", "-i", container, "docker", "load", "-q"],
                          stdin=save.stdout, capture_output=True, timeout=_BUILD_TIMEOUT)
    save.stdout.close()
    if save.wait() != 0 or load.returncode != 0:
        raise SandboxError(f"loading stand-in images into {container} failed: "
                           f"{load.stderr.decode(errors='replace').strip()}")


def _image_id(tag: str, container: str | None = None) -> str | None:
    prefix = ["exec", container, "docker"] if container else []
    result = docker(*prefix, "image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _label(tag: str) -> str | None:
    result = docker("image", "inspect", "--format",
                    f'{{{{index .Config.Labels "{HASH_LABEL}"}}}}', tag, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _ensure_base(log_file: Path, progress: Progress) -> str:
    """A minimal Debian image made with mmdebstrap (no registry to pull one from)."""
    tag = f"{_BASE_REPOSITORY}:{_SUITE}-{_digest(_SUITE, *_MIRRORS)}"
    if _image_id(tag):
        return tag
    progress(f"building the stand-ins' Debian base image {tag} (log: {log_file})")
    import_debian(tag, ("ca-certificates",), _MIRRORS, log_file, suite=_SUITE,
                  extra_args=("--customize-hook=rm -rf $1/var/lib/apt/lists/*",))
    return tag


def _build(image: StandinImage, base: str, inputs_hash: str, log_file: Path) -> None:
    """``docker build`` with the classic builder (an engine without buildx has no BuildKit CLI)."""
    ca_bundle = STANDINS_DIR / Path(image.dockerfile).parent / "ca-certificates.crt"
    args = ["docker", "build", "-t", image.tag, "-f", str(STANDINS_DIR / image.dockerfile),
            "--label", f"{HASH_LABEL}={inputs_hash}", "--build-arg", f"BASE={base}"]
    for key, value in image.build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if "litellm" in image.dockerfile:
        # pip inside the build trusts what this machine trusts (a TLS-inspecting egress, say).
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", ca_bundle)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log_file.open("ab") as log:
            result = subprocess.run([*args, str(STANDINS_DIR)], stdout=log, stderr=log,
                                    env={**os.environ, "DOCKER_BUILDKIT": "0"}, timeout=_BUILD_TIMEOUT)
    finally:
        ca_bundle.unlink(missing_ok=True)
    if result.returncode != 0:
        raise SandboxError(f"building stand-in image {image.tag} failed; see {log_file}")


def _git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    return run(["git", "-C", str(cwd), *args], env={**_GIT_ENV, **(env or {})}).stdout


def _digest(*inputs: str) -> str:
    return hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:16]
