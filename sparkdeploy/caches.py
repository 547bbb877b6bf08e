"""The service user's cache directories and the Harmony vocabulary in the tiktoken cache.

vLLM bind-mounts these directories; one that is missing is created by Docker as root and the
next run as the service user cannot write to it. gpt-oss cannot load without
``o200k_base.tiktoken`` ("vLLM startup fails silently ... especially tiktoken_rs").
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkdeploy.data import project_path
from sparkdeploy.errors import ConfigError

VOCAB_FILE = "o200k_base.tiktoken"
# The URL openai-harmony downloads from; tiktoken-rs caches it under sha1(URL).
HARMONY_VOCAB_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
_RELATIVE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*\Z")


def tiktoken_rs_cache_name(url: str = HARMONY_VOCAB_URL) -> str:
    """The file name tiktoken-rs looks for in TIKTOKEN_RS_CACHE_DIR."""
    return hashlib.sha1(url.encode()).hexdigest()


def cache_directories(home: str, cache_mounts: Any, source: str) -> list[str]:
    """Absolute paths of every cache directory and of the parents between it and ``home``,
    parents first, so none of them is left to ``mkdir -p`` as root."""
    if not isinstance(cache_mounts, Mapping) or not cache_mounts:
        raise ConfigError(source, "vllm_cache_mounts", "must map home-relative paths to container paths")
    directories: list[str] = []
    for relative in cache_mounts:
        if (not isinstance(relative, str) or not _RELATIVE.match(relative)
                or posixpath.normpath(relative) != relative or relative.startswith("..")):
            raise ConfigError(source, "vllm_cache_mounts", f"{relative!r} is not a path under the home",
                              allowed="a relative path such as '.cache/vllm'")
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            path = posixpath.join(home, *parts[:depth])
            if path not in directories:
                directories.append(path)
    return directories


@dataclass(frozen=True)
class VocabSource:
    """Where the vocabulary comes from: a URL the host downloads, or a workstation file."""

    sha256: str
    url: str | None = None
    local_path: Path | None = None


def vocab_source(data: Mapping[str, Any], source: str) -> VocabSource:
    """Validate ``caches_tiktoken_source`` and ``caches_tiktoken_sha256`` (a local file is
    hashed here, so a wrong stand-in fails before any change)."""
    digest = data.get("caches_tiktoken_sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise ConfigError(source, "caches_tiktoken_sha256", f"{digest!r} is not a sha256 digest",
                          allowed="64 lower-case hex digits")
    origin = data.get("caches_tiktoken_source")
    if not isinstance(origin, str) or not origin:
        raise ConfigError(source, "caches_tiktoken_source", f"{origin!r} is not a URL or path")
    if origin.startswith(("https://", "http://")):
        return VocabSource(digest, url=origin)
    path = project_path(origin)
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(source, "caches_tiktoken_source", f"cannot read {path}: {exc.strerror}",
                          allowed="an https URL or a file relative to the project") from exc
    if actual != digest:
        raise ConfigError(source, "caches_tiktoken_sha256",
                          f"{path} has sha256 {actual}, not {digest}",
                          allowed="the digest of the file caches_tiktoken_source names")
    return VocabSource(digest, local_path=path)


def tiktoken_dir(data: Mapping[str, Any], home: str, source: str) -> str:
    """The tiktoken cache on the host; it must be one of the directories vLLM mounts."""
    relative = data.get("caches_tiktoken_dir")
    mounts = data.get("vllm_cache_mounts") or {}
    if relative not in mounts:
        raise ConfigError(source, "caches_tiktoken_dir",
                          f"{relative!r} is not mounted into the vLLM container",
                          allowed=", ".join(map(repr, mounts)) or "a key of vllm_cache_mounts")
    return posixpath.join(home, relative)


def mode(data: Mapping[str, Any], source: str) -> str:
    value = data.get("caches_mode")
    if not isinstance(value, str) or not re.match(r"^0?[0-7]{3}\Z", value):
        raise ConfigError(source, "caches_mode", f"{value!r} is not an octal mode",
                          allowed="e.g. '0755'")
    if not int(value, 8) & 0o700 == 0o700:
        raise ConfigError(source, "caches_mode", f"{value} keeps the owner out of its own cache",
                          allowed="a mode with rwx for the owner, e.g. '0755'")
    return value.zfill(4)
