"""What the deploy wrote for this host: /etc/sparkdeploy/watch/config.json (no secrets) and
secrets.json beside it (0600: the notification hook and power-cycle commands)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

CONFIG_FILE = "/etc/sparkdeploy/watch/config.json"
SECRETS_NAME = "secrets.json"


@dataclass(frozen=True)
class Model:
    """One served model on this host (a cluster's head, or a worker rank that is never probed)."""

    name: str
    recipe: str
    url: str
    container: str
    compose_dir: str
    api_key_file: str | None = None
    role: str = "head"
    tensor_parallel: int | None = None


@dataclass(frozen=True)
class Settings:
    host: str
    state_dir: str
    drop_page_cache: bool
    watchdog: dict[str, Any]
    models: list[Model]
    watcher: dict[str, Any]
    secrets: dict[str, Any] = field(default_factory=dict)


def load_settings(path: str = CONFIG_FILE) -> Settings:
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
    secrets_path = os.path.join(os.path.dirname(path), SECRETS_NAME)
    secrets: dict[str, Any] = {}
    if os.path.exists(secrets_path):
        with open(secrets_path, encoding="utf-8") as file:
            secrets = json.load(file)
    return Settings(
        host=config["host"],
        state_dir=config["state_dir"],
        drop_page_cache=bool(config.get("drop_page_cache")),
        watchdog=config.get("watchdog") or {"enabled": False},
        models=[Model(**model) for model in config.get("models") or []],
        watcher=config.get("watcher") or {"enabled": False, "targets": []},
        secrets=secrets,
    )
