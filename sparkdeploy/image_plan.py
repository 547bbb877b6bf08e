"""How a recipe's image is obtained, the way upstream's ``build-and-copy.sh`` obtains it.

Upstream's recipes name local tags (``vllm-node``, ``vllm-node-mxfp4``, ``vllm-node-b12x``) that
its ``build-and-copy.sh -t <container> <build_args>`` makes (358bf26, read, not copied): with no
build flags it pulls the prebuilt, CI-tested ``eugr/spark-vllm:latest`` and tags it;
``--exp-b12x`` pulls ``eugr/spark-vllm-b12x:latest`` instead; ``--exp-mxfp4``, ``--use-wheels`` and
the source and version flags build locally. A registry image (``nvcr.io/...``) is pulled by its
tag. So there are three methods: ``build``, ``prebuilt`` (pull and tag) and ``pull``.

``:latest`` moves nightly, so whatever a host got is recorded on the image (a label naming the
method, the upstream commit and build flags, and the digest pulled); a digest in
``vllm_image_pins`` makes the deploy pull exactly that image instead. A host's image is current
when its record matches the plan: a converged run pulls and builds nothing, and a changed pin or
commit is exactly one pull or build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from sparkdeploy.data import upstream_checkout_dir
from sparkdeploy.data_values import repository_url
from sparkdeploy.errors import ConfigError

BUILD = "build"
PREBUILT = "prebuilt"
PULL = "pull"
IMAGE_LABEL = "io.sparkdeploy.image"
DIGEST_LABEL = "io.sparkdeploy.image.digest"
# What images built by earlier sparkdeploy releases carry: {"upstream_commit", "build_args"}.
LEGACY_BUILD_LABEL = "io.sparkdeploy.build"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SHA = re.compile(r"[0-9a-f]{40}")

# build-and-copy.sh's flags at the pinned commit (aliases folded): flag -> takes a value.
_UPSTREAM_FLAGS = {
    "--use-wheels": False, "--gpu-arch": True, "--rebuild-flashinfer": False,
    "--rebuild-vllm": False, "--force-flashinfer-download": False, "--force-vllm-download": False,
    "--force-download": False, "--vllm-repo": True, "--vllm-ref": True, "--torch-version": True,
    "--torchvision-version": True, "--torchaudio-version": True, "--flashinfer-ref": True,
    "--tf5": False, "--exp-mxfp4": False, "--exp-b12x": False, "--apply-vllm-pr": True,
    "--apply-preset-vllm-prs": False, "--apply-flashinfer-pr": True, "--full-log": False,
    "--network": True,
}
_ALIASES = {"--experimental-mxfp4": "--exp-mxfp4", "--experimental-b12x": "--exp-b12x",
            "--pre-tf": "--tf5", "--pre-transformers": "--tf5"}
# Flags that make the script build locally instead of pulling the prebuilt image; the ones with
# a value do so only when it differs from the script's default.
_LOCAL_BUILD_FLAGS = {
    "--use-wheels", "--exp-mxfp4", "--rebuild-flashinfer", "--rebuild-vllm",
    "--force-flashinfer-download", "--force-vllm-download", "--force-download", "--vllm-ref",
    "--torchvision-version", "--torchaudio-version", "--flashinfer-ref", "--apply-vllm-pr",
    "--apply-preset-vllm-prs", "--apply-flashinfer-pr",
}
_SCRIPT_DEFAULTS = {"--gpu-arch": "12.1a", "--torch-version": "2.13.0",
                    "--vllm-repo": "https://github.com/vllm-project/vllm.git"}
# What the script refuses to combine (it exits with an error).
_INCOMPATIBLE = {
    "--exp-b12x": {"--exp-mxfp4", "--use-wheels", "--vllm-repo", "--vllm-ref", "--torch-version",
                   "--torchvision-version", "--torchaudio-version", "--tf5",
                   "--apply-preset-vllm-prs", "--force-vllm-download", "--force-download"},
    "--exp-mxfp4": {"--apply-vllm-pr", "--apply-flashinfer-pr", "--vllm-repo", "--vllm-ref",
                    "--torch-version", "--torchvision-version", "--torchaudio-version",
                    "--flashinfer-ref", "--tf5", "--rebuild-flashinfer", "--rebuild-vllm"},
}
# Flags that are the deploy's business, not a recipe's: the tag, jobs, copying, discovery.
_DEPLOY_FLAGS = {
    "-t": "the tag is the recipe's container", "--tag": "the tag is the recipe's container",
    "-j": "jobs come from upstream_build_jobs", "--build-jobs": "jobs come from upstream_build_jobs",
    "-c": "the deploy copies images itself", "--copy-to": "the deploy copies images itself",
    "--copy-to-host": "the deploy copies images itself",
    "--copy-to-hosts": "the deploy copies images itself",
    "--copy-parallel": "the deploy copies images itself", "-u": "the deploy copies images itself",
    "--user": "the deploy copies images itself", "--no-build": "the deploy decides when to build",
    "--cleanup": "the deploy decides when to build", "--setup": "it starts interactive discovery",
    "--config": "the deploy passes no .env", "-h": "it only prints help",
    "--help": "it only prints help",
}


@dataclass(frozen=True)
class UpstreamCheckout:
    """The upstream repository, the commit it is pinned to and where it is checked out."""

    repo_url: str
    commit: str
    directory: str


@dataclass(frozen=True)
class ImagePlan:
    """How one host gets the image its recipe runs, and what the image must record."""

    image: str
    method: str
    build_args: tuple[str, ...] = ()
    # prebuilt: the image upstream's script pulls; pull: the image itself
    source: str | None = None
    # the sha256 digest of ``source`` the host must run (vllm_image_pins)
    pin: str | None = None
    # build, and prebuilt without a pin: upstream's script runs from this checkout
    checkout: UpstreamCheckout | None = None
    jobs: int = 0

    @property
    def runs_upstream_script(self) -> bool:
        return self.checkout is not None

    @property
    def pull_reference(self) -> str | None:
        """What the deploy pulls itself (pinned images and registry images); None: the script does."""
        if self.pin:
            return f"{repository(self.source or self.image)}@{self.pin}"
        return self.image if self.method == PULL else None

    def script_args(self) -> list[str]:
        """``build-and-copy.sh`` arguments as upstream's run-recipe.py passes them (plus ``-j``)."""
        args = ["-t", self.image, *self.build_args]
        return [*args, "-j", str(self.jobs)] if self.method == BUILD else args

    @property
    def identity(self) -> dict[str, Any]:
        """What the host's image must record (its label) to be the one this plan makes."""
        if self.pin:
            return {"method": self.method, "source": repository(self.source or self.image),
                    "digest": self.pin}
        if self.checkout is not None:
            return {"method": self.method, "upstream_commit": self.checkout.commit,
                    "build_args": list(self.build_args)}
        return {"method": PULL, "source": self.image}

    @property
    def label(self) -> str:
        return json.dumps(self.identity, sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """One line for ``sparkdeploy render``: the image, how it is obtained, and when again."""
        if self.pin:
            return (f"{self.image}: pull {self.pull_reference} and tag it {self.image} "
                    "(pinned in vllm_image_pins; pulled again when the pin changes)")
        if self.method == PULL:
            return (f"{self.image}: pull it once (the digest pulled is recorded on the host; pin one "
                    "in vllm_image_pins to move it)")
        script = f"build-and-copy.sh {' '.join(self.script_args())} at upstream commit " \
                 f"{self.checkout.commit[:12]}"
        again = "made again when upstream_commit or build_args change"
        if self.method == PREBUILT:
            return (f"{self.image}: pull-and-tag {self.source} ({script}; the digest pulled is "
                    f"recorded on the host; {again}, or pin a digest in vllm_image_pins)")
        return f"{self.image}: build locally ({script}; 25-45 min on a Spark; {again})"


@dataclass(frozen=True)
class ImageRecord:
    """What a host's image says about how it was made; ``present`` False when there is none."""

    present: bool
    image_id: str | None = None
    identity: Mapping[str, Any] | None = None
    digest: str | None = None
    metadata: Mapping[str, Any] | None = None


def repository(reference: str) -> str:
    """An image reference without its tag or digest (``eugr/spark-vllm:latest`` -> ``eugr/spark-vllm``)."""
    name = reference.split("@", 1)[0]
    head, _, tail = name.rpartition("/")
    return f"{head}/{tail.split(':', 1)[0]}" if head else tail.split(":", 1)[0]


def is_local_tag(image: str) -> bool:
    """Upstream's own tags have no registry or namespace; only its build script makes them."""
    return "/" not in image


def upstream_checkout(host_name: str, data: Mapping[str, Any]) -> UpstreamCheckout:
    """The host's pinned upstream checkout; a commit must be a full id (branches and tags move)."""
    source = f"host {host_name!r} data"
    commit = str(data["upstream_commit"])
    if not _SHA.fullmatch(commit):
        raise ConfigError(source, "upstream_commit", f"{commit!r} is not a full commit id",
                          allowed="40 lowercase hex digits (branches and tags move)")
    url = repository_url(data["upstream_repo_url"], source, "upstream_repo_url")
    return UpstreamCheckout(url, commit, upstream_checkout_dir(data))


def image_plan(host_name: str, container: str, build_args: tuple[str, ...], recipe_source: str,
               data: Mapping[str, Any]) -> ImagePlan:
    """The plan for ``container`` with the recipe's ``build_args``; bad flags or pins are errors."""
    source = f"host {host_name!r} data"
    pin = _pin(container, data, source)
    if not build_args and not is_local_tag(container):
        return ImagePlan(container, PULL, source=container, pin=pin)
    flags = _check_flags(build_args, recipe_source)
    builds_locally = bool(set(flags) & _LOCAL_BUILD_FLAGS) or any(
        flag in flags and flags[flag] != default and not (flag == "--torch-version" and "--exp-b12x" in flags)
        for flag, default in _SCRIPT_DEFAULTS.items())
    if builds_locally:
        if pin:
            raise ConfigError(source, "vllm_image_pins",
                              f"{container} is built locally (build_args {' '.join(build_args)}); "
                              "a built image is pinned by upstream_commit, not a digest",
                              allowed=f"no entry for {container}")
        return ImagePlan(container, BUILD, build_args, checkout=upstream_checkout(host_name, data),
                         jobs=_positive(data, "upstream_build_jobs", source))
    prebuilt = data.get("upstream_prebuilt_images") or {}
    family = "b12x" if "--exp-b12x" in flags else "default"
    pulled = prebuilt.get(family)
    if not isinstance(pulled, str) or not pulled:
        raise ConfigError(source, "upstream_prebuilt_images",
                          f"no {family!r} entry: which image build-and-copy.sh pulls for {container}",
                          allowed="a mapping with 'default' and 'b12x' image references")
    checkout = None if pin else upstream_checkout(host_name, data)
    return ImagePlan(container, PREBUILT, build_args, source=pulled, pin=pin, checkout=checkout)


def image_reason(record: ImageRecord, plan: ImagePlan) -> str | None:
    """Why the host's image must be made again, or None when its record matches the plan."""
    if not record.present:
        return f"image {plan.image} is missing"
    identity = record.identity
    if identity is None and plan.method == BUILD:
        return _metadata_reason(record.metadata, plan)
    if identity is None:
        return (f"image {plan.image} carries no sparkdeploy record: it was made or changed "
                "outside sparkdeploy")
    if plan.pin:
        if record.digest == plan.pin or identity.get("digest") == plan.pin:
            return None
        return f"image {plan.image} is {_short_digest(record.digest)}, pinned is {_short_digest(plan.pin)}"
    wanted = plan.identity
    if identity == wanted:
        return None
    if identity.get("method") != wanted["method"]:
        return (f"image {plan.image} was made by {identity.get('method')}, the recipe now wants "
                f"{wanted['method']}")
    if identity.get("upstream_commit") != wanted.get("upstream_commit"):
        return (f"image {plan.image} was made at upstream commit {_short(identity.get('upstream_commit'))}"
                f", pinned is {_short(wanted.get('upstream_commit'))}")
    if identity.get("build_args") != wanted.get("build_args"):
        return (f"image {plan.image} was made with {identity.get('build_args')}, the recipe asks "
                f"for {wanted.get('build_args')}")
    return f"image {plan.image} records {json.dumps(dict(identity), sort_keys=True)}, not {plan.label}"


def parse_image_record(lines: list[str]) -> ImageRecord:
    """Parse the ``ImageMade`` fact's output (see :mod:`sparkdeploy.serving_facts`)."""
    if not lines or lines[0].strip() == "missing":
        return ImageRecord(present=False)
    values: dict[str, str] = {}
    metadata_lines = []
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "metadata":
            metadata_lines.append(rest)
        elif kind in ("id", "label", "legacy", "digest"):
            values[kind] = rest.strip()
    identity = _json_object(values.get("label"))
    legacy = _json_object(values.get("legacy"))
    if identity is None and legacy is not None:
        identity = {"method": BUILD, "upstream_commit": legacy.get("upstream_commit"),
                    "build_args": list(legacy.get("build_args") or [])}
    digest = values.get("digest") or None
    return ImageRecord(present=True, image_id=values.get("id") or None, identity=identity,
                       digest=digest if digest and _DIGEST.fullmatch(digest) else None,
                       metadata=_metadata(metadata_lines))


def _pin(container: str, data: Mapping[str, Any], source: str) -> str | None:
    pins = data.get("vllm_image_pins") or {}
    if not isinstance(pins, Mapping):
        raise ConfigError(source, "vllm_image_pins", "expected a mapping of image -> digest")
    pin = pins.get(container)
    if pin is not None and not (isinstance(pin, str) and _DIGEST.fullmatch(pin)):
        raise ConfigError(source, f"vllm_image_pins.{container}", f"{pin!r} is not an image digest",
                          allowed="sha256: and 64 lowercase hex digits, as `docker image inspect` "
                          "shows in RepoDigests")
    return pin


def _check_flags(build_args: tuple[str, ...], recipe_source: str) -> dict[str, str | None]:
    """The flags of ``build_args`` (aliases folded) with their values; what build-and-copy.sh
    would reject (an unknown flag, a missing value, a forbidden combination) is an error here."""
    flags: dict[str, str | None] = {}
    args = list(build_args)
    while args:
        arg = args.pop(0)
        given, inline, value = arg.partition("=")
        if given in _DEPLOY_FLAGS:
            raise ConfigError(recipe_source, "build_args",
                              f"{given} is not for a recipe: {_DEPLOY_FLAGS[given]}")
        name = _ALIASES.get(given, given)
        if name not in _UPSTREAM_FLAGS:
            raise ConfigError(recipe_source, "build_args", f"build-and-copy.sh does not know {arg!r}",
                              allowed=", ".join(sorted(_UPSTREAM_FLAGS)))
        if _UPSTREAM_FLAGS[name] and not inline:
            if not args or args[0].startswith("-"):
                raise ConfigError(recipe_source, "build_args", f"{given} needs a value")
            value = args.pop(0)
        flags[name] = value if _UPSTREAM_FLAGS[name] else None
    for preset, clashes in _INCOMPATIBLE.items():
        clash = sorted(clashes & set(flags)) if preset in flags else []
        if clash:
            raise ConfigError(recipe_source, "build_args",
                              f"build-and-copy.sh refuses {preset} together with {clash[0]}")
    return flags


def _positive(data: Mapping[str, Any], key: str, source: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(source, key, f"{value!r} must be a whole number of at least 1")
    return value


def _metadata_reason(metadata: Mapping[str, Any] | None, plan: ImagePlan) -> str | None:
    """For an image built by hand with upstream's script: its build-metadata.yaml decides."""
    metadata = metadata or {}
    built_from = metadata.get("build_script_commit")
    if built_from is None:
        return f"image {plan.image} does not record what it was built from"
    if plan.checkout and built_from != plan.checkout.commit:
        return (f"image {plan.image} was built at upstream commit {_short(built_from)}, pinned is "
                f"{_short(plan.checkout.commit)}")
    recorded = {**metadata, **(metadata.get("build_args") or {})}
    for arg in plan.build_args:
        # upstream records each experimental flag as exp_<name>: true (--exp-mxfp4 -> exp_mxfp4)
        if arg.startswith("--exp-") and recorded.get("exp_" + arg[6:].replace("-", "_")) is not True:
            return f"image {plan.image} does not record the build flag {arg}"
    return None


def _metadata(lines: list[str]) -> dict[str, Any] | None:
    if not lines:
        return None
    try:
        parsed = yaml.safe_load("\n".join(lines))
    except yaml.YAMLError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _json_object(text: str | None) -> dict[str, Any] | None:
    if not text or not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _short(commit: object) -> str:
    return str(commit)[:12] if commit else "(unknown)"


def _short_digest(digest: str | None) -> str:
    return digest[:19] if digest else "(no digest recorded)"
