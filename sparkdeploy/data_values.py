"""Host data values checked for what they may hold, not only their type.

Values from data reach root shell lines, apt sources, ssh configs, compose env files and client
launchers. A port of 0, a timeout of -1, a URL with a newline or a path with ``..`` would each be
accepted by the type check and go wrong later, on a host or on a client machine. Every check
here raises a one-line :class:`ConfigError` naming the host and the key, before any change.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sparkdeploy.errors import ConfigError
from sparkdeploy.secret_values import reveal

# Characters a path, URL or name from data never needs: whitespace, control characters and
# what a shell, an ssh_config, an apt source line or a compose file would read as syntax.
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f'\"`\\;|&<>]")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._@+,=:/-]*\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_-]*\Z")
_CONTAINER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# a branch, tag or commit of a Hugging Face repository
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*\Z")
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
_REPO_SCHEMES = ("https", "http", "ssh", "git", "file")

PORT_KEYS = ("proxy_port", "relay_port", "cluster_master_port", "cluster_ssh_port", "ssh_port")
POSITIVE_INT_KEYS = (
    "vllm_health_timeout", "proxy_health_timeout", "deploy_poll_interval", "verify_timeout",
    "upstream_build_timeout", "upstream_build_jobs", "model_download_timeout",
    "model_progress_interval", "service_failure_log_lines", "clients_output_tokens",
    "spark_memory_gib", "vllm_nofile_limit", "status_timeout", "relay_health_timeout",
    "relay_turn_timeout", "relay_max_message_chars", "relay_max_rounds", "relay_max_participants",
    "relay_max_tokens", "relay_default_max_tokens", "relay_default_context_tokens",
)
HTTP_URL_KEYS = ("model_hub_endpoint", "model_pip_index_url", "proxy_client_url", "relay_client_url",
                 "verify_vllm_url", "toolkit_repo_url")
HOST_PATH_KEYS = ("service_home", "vllm_compose_dir", "proxy_compose_dir", "model_fetch_dir",
                  "upstream_checkout_dir", "upstream_build_log_dir", "model_store_nfs_dir",
                  "model_store_container_dir", "relay_compose_dir", "relay_data_dir")
# secrets that are tokens or passwords (cluster_ssh_key is a multi-line key file)
ONE_WORD_SECRET_KEYS = ("model_hub_token", "vllm_api_key", "proxy_master_key", "proxy_db_password",
                        "relay_api_key")
# pyinfra's own connection keys, written into the ssh_config of ``drift --verify``.
SSH_TEXT_KEYS = ("ssh_hostname", "ssh_user", "ssh_key", "ssh_known_hosts_file")


def check_values(host_name: str, data: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first host data value outside what its key allows."""
    source = f"host {host_name!r} data"
    present = {key: data[key] for key in data if data[key] is not None}
    for key in PORT_KEYS:
        if key in present:
            _port(present[key], source, key)
    for key in POSITIVE_INT_KEYS:
        if key in present and (not _is_int(present[key]) or present[key] <= 0):
            raise ConfigError(source, key, f"{present[key]!r} is not a positive whole number")
    if "clients_context_fraction" in present:
        fraction = present["clients_context_fraction"]
        if not (_is_number(fraction) and math.isfinite(fraction) and 0 < fraction <= 1):
            raise ConfigError(source, "clients_context_fraction",
                              f"{fraction!r} is not a fraction", allowed="a number above 0, at most 1")
    for key in HTTP_URL_KEYS:
        if key in present:
            http_url(present[key], source, key)
    if "upstream_repo_url" in present:
        repository_url(present["upstream_repo_url"], source, "upstream_repo_url")
    for key in HOST_PATH_KEYS:
        if key in present:
            host_path(present[key], source, key)
    for key in SSH_TEXT_KEYS:
        if key in present:
            one_line(present[key], source, key)
    for key in ONE_WORD_SECRET_KEYS:
        if key in present and re.search(r"\s", str(reveal(present[key]))):
            # the value is never shown: it is a secret
            raise ConfigError(source, key, "a supplied secret must be one word (no spaces or newlines)")
    _named(present, source)
    _addresses(present, source)


def http_url(value: Any, source: str, key: str) -> str:
    """An http(s) URL with a host, nothing a shell or a config line would read as syntax."""
    parts = _split(value)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(source, key, f"{value!r} is not an http(s) URL",
                          allowed="None or a URL such as https://example.org/path")
    return value


def repository_url(value: Any, source: str, key: str) -> str:
    """A git repository: a URL (https, ssh, git, file) or an absolute path, never an option."""
    if isinstance(value, str) and value.startswith("/") and _SAFE_PATH.match(value):
        return value
    parts = _split(value)
    if parts is None or parts.scheme not in _REPO_SCHEMES or not (parts.hostname or parts.path):
        raise ConfigError(source, key, f"{value!r} is not a git repository URL or absolute path",
                          allowed="https://host/owner/repo.git, ssh://..., or /absolute/path")
    return value


def host_path(value: Any, source: str, key: str) -> str:
    """An absolute, normalized host path below ``/`` (no ``..``, no spaces or shell syntax)."""
    if (not isinstance(value, str) or not _SAFE_PATH.match(value) or value == "/"
            or posixpath.normpath(value) != value.rstrip("/")):
        raise ConfigError(source, key, f"{value!r} is not a normalized absolute path",
                          allowed="e.g. /opt/sparkdeploy/vllm (letters, digits, ._@+,=:- and /; "
                          "no '..')")
    return value


def one_line(value: Any, source: str, key: str) -> str:
    """Text for a config line: a newline would start a line of its own (an ssh ``ProxyCommand``),
    a double quote would end a quoted argument."""
    if (not isinstance(value, (str, int)) or isinstance(value, bool) or _has_control(str(value))
            or '"' in str(value)):
        raise ConfigError(source, key, f"{value!r} is not one line of text")
    return str(value)


def _named(present: Mapping[str, Any], source: str) -> None:
    for key, pattern, allowed in (
            ("clients_key_env", _IDENTIFIER, "an environment variable name, e.g. SPARKDEPLOY_PROXY_KEY"),
            ("clients_relay_key_env", _IDENTIFIER, "an environment variable name, e.g. SPARKRELAY_API_KEY"),
            ("service_user", _ACCOUNT, "a login name, e.g. cluster"),
            ("vllm_container_name", _CONTAINER, "letters, digits, '_', '.', '-'"),
            ("vllm_address", _HOST_NAME, "a host name or address"),
            ("model_revision", REVISION, "a branch or tag name, or a 40-hex commit id")):
        if key in present and not (isinstance(present[key], str) and pattern.match(present[key])):
            raise ConfigError(source, key, f"{present[key]!r} is not allowed here", allowed=allowed)


def _addresses(present: Mapping[str, Any], source: str) -> None:
    for key in ("vllm_private_address", "proxy_bind_address", "relay_bind_address"):
        if key not in present:
            continue
        try:
            ipaddress.ip_address(present[key])
        except ValueError:
            raise ConfigError(source, key, f"{present[key]!r} is not an IP address") from None


def _port(value: Any, source: str, key: str) -> None:
    if not _is_int(value) or not 1 <= value <= 65535:
        raise ConfigError(source, key, f"{value!r} is not a TCP port", allowed="1 to 65535")


def _split(value: Any):
    if not isinstance(value, str) or _UNSAFE.search(value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises on a port that is not a number
        return parts
    except ValueError:
        return None


def _has_control(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
