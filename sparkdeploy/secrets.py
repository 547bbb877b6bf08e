"""Per-deployment secrets: supplied by the operator or generated once, never defaulted or printed.

Generated values are kept on the workstation in ``secrets_dir`` (mode 0600, never committed) so
every later run renders the same files and a converged host reports no change. On hosts they
only ever land in files of mode 0600.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sparkdeploy.data import SECRET_KEYS, project_path
from sparkdeploy.errors import ConfigError
from sparkdeploy.secret_values import reveal


def _ssh_private_key() -> str:
    """An ed25519 key in OpenSSH's format, for the node-to-node image copy of a cluster."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()


def ssh_public_key(private_key: str, comment: str) -> str:
    """The ``authorized_keys`` form of an OpenSSH private key."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private_key.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return f"{public} {comment}"


# name -> how to make a fresh value (LiteLLM requires master keys to start with "sk-")
_GENERATORS = {
    "proxy_master_key": lambda: "sk-" + secrets.token_urlsafe(32),
    "proxy_db_password": lambda: secrets.token_urlsafe(24),
    "vllm_api_key": lambda: secrets.token_urlsafe(32),
    "cluster_ssh_key": _ssh_private_key,
    "relay_api_key": lambda: secrets.token_urlsafe(32),
}
PROXY_SECRETS = ("proxy_master_key", "proxy_db_password")
VLLM_SECRETS = ("vllm_api_key",)
CLUSTER_SECRETS = ("cluster_ssh_key",)
RELAY_SECRETS = ("relay_api_key",)
# placed as KEY=value lines of a compose env file, which interpolates $ and strips # comments
ENV_FILE_SECRETS = PROXY_SECRETS + VLLM_SECRETS + RELAY_SECRETS
_ENV_FILE_VALUE = re.compile(r"[A-Za-z0-9\-_.~+/=:@%^*!,]+")
_MIN_LENGTH = 16  # every copy-pasted tutorial default is shorter


def secret_store_path(host_name: str, data: Mapping[str, Any]) -> Path:
    """The local file holding a host's generated secrets."""
    safe = host_name.replace("/", "_").replace("@", "")
    return project_path(data["secrets_dir"]) / f"{safe}.json"


def host_secrets(host_name: str, data: Mapping[str, Any],
                 names: tuple[str, ...] = PROXY_SECRETS) -> dict[str, str]:
    """The host's secrets ``names``: operator-supplied where given, else generated once and stored."""
    supplied = {name: reveal(data.get(name)) for name in names if data.get(name)}
    for name, value in supplied.items():
        if not isinstance(value, str) or len(value) < _MIN_LENGTH or len(set(value)) < 8:
            raise ConfigError(f"host {host_name!r} data", name,
                              f"a supplied secret must be a random string of at least {_MIN_LENGTH} "
                              "characters (tutorial defaults are not secrets)")
        if name in ENV_FILE_SECRETS and not _ENV_FILE_VALUE.fullmatch(value):
            raise ConfigError(f"host {host_name!r} data", name,
                              "a supplied secret goes into a compose env file, which would re-read "
                              "whitespace, quotes, '$', '#' or '\\' in it",
                              allowed="letters, digits and -_.~+/=:@%^*!,")
    missing = [name for name in names if name not in supplied]
    if not missing:
        return supplied
    path = secret_store_path(host_name, data)
    stored = _read(path)
    fresh = {name: _GENERATORS[name]() for name in missing if name not in stored}
    if fresh:
        stored.update(fresh)
        _write(path, stored)
    return {**{name: stored[name] for name in missing}, **supplied}


def _read(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), None, f"cannot read the secret store: {exc}") from exc


def _write(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle, indent=2, sort_keys=True)
    tmp.replace(path)


def forget(host_name: str, data: Mapping[str, Any], name: str) -> bool:
    """Drop a generated secret so the next deploy generates and places a new one (rotation)."""
    if name not in _GENERATORS:
        raise ConfigError("sparkdeploy secrets", name, "not a secret sparkdeploy generates",
                          allowed=", ".join(_GENERATORS))
    if data.get(name):
        raise ConfigError(f"host {host_name!r} data", name,
                          "is supplied by you, not generated: change it where you set it")
    path = secret_store_path(host_name, data)
    stored = _read(path)
    if name not in stored:
        return False
    del stored[name]
    _write(path, stored)
    return True


def known_secrets(hosts_data: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every secret of the inventory, supplied or generated (each host's ``secrets_dir``), in
    each form it is written (as is, URL-quoted, line by line): what output must never show."""
    values: set[str] = set()
    for host_name, data in hosts_data.items():
        values.update(str(reveal(data[name])) for name in SECRET_KEYS if data.get(name))
        if data.get("secrets_dir"):
            try:
                stored = _read(secret_store_path(host_name, data))
            except ConfigError:
                stored = {}
            values.update(value for value in stored.values() if isinstance(value, str))
    forms = set(values)
    for value in values:
        forms.add(quote(value, safe=""))
        # a key file shows up line by line; its BEGIN/END lines are no secret
        forms.update(line.strip() for line in value.splitlines() if not line.startswith("-----"))
    return sorted(form for form in forms if len(form) >= 8)


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Write ``KEY=value`` lines readable only by their owner (mode 0600 from creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in values.items())
    os.chmod(path, 0o600)
