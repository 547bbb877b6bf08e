"""The relay (files/sparkrelay) as a compose project beside the proxy: its settings, key and files.

It runs in the proxy's own image by default (that image already carries Starlette, uvicorn,
httpx and the MCP SDK the relay is built on, so nothing new is pulled), joins the proxy's compose
network and asks the proxy for every model of the site, so the tool-fix callback and routing
apply to relayed turns too. Conversations live in ``relay_data_dir`` on the host, outside the
compose project, so redeploys and restarts never touch them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.errors import ConfigError
from sparkdeploy.secrets import RELAY_SECRETS, host_secrets
from sparkdeploy.vllm_service import VllmService, served_context

PACKAGE = "sparkrelay"
PACKAGE_SOURCE = PROJECT_ROOT / "files" / PACKAGE
CONTAINER = "sparkrelay"
_CONTAINER_PORT = 4100
_CONTAINER_DATA = "/data"
_APP_DIR = "/relay"
# the proxy's compose project is named "litellm" (sparkdeploy.proxy): compose calls its network so
_PROXY_NETWORK = "litellm_default"
_PROXY_URL = "http://litellm:4000/v1"
# re-read by the running relay: placing a new one needs no restart
REREAD_FILE = "models/models.json"
_LIMIT_KEYS = {  # data key -> the relay's setting
    "relay_turn_timeout": "turn_timeout",
    "relay_max_message_chars": "max_message_chars",
    "relay_max_rounds": "max_rounds",
    "relay_max_participants": "max_participants",
    "relay_max_tokens": "max_tokens",
    "relay_default_max_tokens": "default_max_tokens",
    "relay_default_context_tokens": "default_context_tokens",
}


def check_relay_data(host_name: str, data: Mapping[str, Any]) -> None:
    """Refuse a relay that cannot run, before any host is touched."""
    if not data.get("relay_enabled"):
        return
    source = f"host {host_name!r} data"
    if not data.get("proxy_enabled"):
        raise ConfigError(source, "relay_enabled", "the relay reaches the models through this host's "
                          "proxy, which is off", allowed="proxy_enabled: true on the same host")
    if data["relay_port"] == data["proxy_port"]:
        raise ConfigError(source, "relay_port", f"{data['relay_port']} is also proxy_port",
                          allowed="a port of its own")
    if data["relay_default_max_tokens"] > data["relay_max_tokens"]:
        raise ConfigError(source, "relay_default_max_tokens",
                          f"{data['relay_default_max_tokens']} is above relay_max_tokens "
                          f"{data['relay_max_tokens']}", allowed=f"at most {data['relay_max_tokens']}")


def relay_image(data: Mapping[str, Any]) -> str:
    return data.get("relay_image") or data["proxy_image"]


def relay_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """``relay.json``: where the models are and the limits (no secret)."""
    return {
        "upstream_url": _PROXY_URL,
        "models_file": f"{_APP_DIR}/{REREAD_FILE}",
        **{setting: data[key] for key, setting in _LIMIT_KEYS.items()},
        # every field at its longest, each character escaped in JSON (\\uXXXX: 6 bytes)
        "max_body_bytes": (data["relay_max_participants"] + 1) * 6 * data["relay_max_message_chars"] + 65536,
        "data_dir": _CONTAINER_DATA,
        "listen_address": "0.0.0.0",
        "port": _CONTAINER_PORT,
    }


def model_contexts(site: list[dict[str, Any]], services: Mapping[str, tuple[VllmService, ...]],
                   hosts_data: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``models.json``: each site model's context (its max_model_len), which the relay re-reads,
    so a model's change restarts only that model, never the relay."""
    contexts = {}
    for host_name, served in services.items():
        for service in served:
            context = served_context(service, hosts_data[host_name])
            if context:
                contexts[service.served_name] = {"context_tokens": context}
    names = {entry["model_name"] for entry in site}
    return {name: contexts[name] for name in sorted(names) if name in contexts}


def relay_compose(data: Mapping[str, Any], mounted_digest: str) -> dict[str, Any]:
    """The relay's compose project; ``mounted_digest`` (of its settings and code) is a label, so
    a changed file recreates the container and an unchanged one leaves it running."""
    health = (f"import urllib.request; urllib.request.urlopen("
              f"'http://127.0.0.1:{_CONTAINER_PORT}/health', timeout=5)")
    return {
        "name": "sparkrelay",
        "services": {
            "relay": {
                "image": relay_image(data),
                "container_name": CONTAINER,
                "entrypoint": ["python3", "-m", PACKAGE],
                "working_dir": _APP_DIR,
                "environment": {"RELAY_CONFIG": f"{_APP_DIR}/relay.json", "PYTHONPATH": _APP_DIR,
                                "PYTHONUNBUFFERED": "1"},
                "env_file": ["secrets.env"],
                "volumes": [
                    f"./relay.json:{_APP_DIR}/relay.json:ro",
                    # the directory, not the file: a replaced file is seen inside the container
                    f"./models:{_APP_DIR}/models:ro",
                    f"./{PACKAGE}:{_APP_DIR}/{PACKAGE}:ro",
                    f"{data['relay_data_dir']}:{_CONTAINER_DATA}",
                ],
                "ports": [f"{data['relay_bind_address']}:{data['relay_port']}:{_CONTAINER_PORT}"],
                "networks": ["proxy"],
                "healthcheck": {"test": ["CMD", "python3", "-c", health], "interval": "15s",
                                "timeout": "10s", "retries": 5, "start_period": "30s"},
                "restart": "unless-stopped",
                "labels": {"io.sparkdeploy.mounted-files": mounted_digest},
            },
        },
        "networks": {"proxy": {"name": _PROXY_NETWORK, "external": True}},
    }


def package_files() -> dict[str, str]:
    """The relay's modules by file name."""
    return {path.name: path.read_text() for path in sorted(PACKAGE_SOURCE.glob("*.py"))}


def relay_documents(host_name: str, data: Mapping[str, Any], site: list[dict[str, Any]],
                    services: Mapping[str, tuple[VllmService, ...]],
                    hosts_data: Mapping[str, Mapping[str, Any]]
                    ) -> tuple[dict[str, Any], dict[str, tuple[str, bool]]]:
    """The compose document, and relative path in the project -> (content, secret). The digest
    label covers the settings and the code, not models.json (re-read by the relay)."""
    settings = _json(relay_settings(data))
    code = {f"{PACKAGE}/{name}": (text, False) for name, text in package_files().items()}
    digest = hashlib.sha256((settings + "".join(text for text, _ in code.values())).encode()).hexdigest()[:16]
    keys = host_secrets(host_name, data, RELAY_SECRETS)
    proxy_key = host_secrets(host_name, data)["proxy_master_key"]
    return relay_compose(data, digest), {
        "relay.json": (settings, False),
        REREAD_FILE: (_json(model_contexts(site, services, hosts_data)), False),
        "secrets.env": (f"RELAY_API_KEY={keys['relay_api_key']}\nRELAY_UPSTREAM_KEY={proxy_key}\n", True),
        **code,
    }


def _json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def relay_url(host_name: str, data: Mapping[str, Any]) -> str:
    """The URL clients use for a host's relay."""
    return (data.get("relay_client_url") or f"http://{host_name}:{data['relay_port']}").rstrip("/")
