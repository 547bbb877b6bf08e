"""The LiteLLM proxy (+ Postgres) compose project and its ``config.yaml``.

The proxy routes to every model served in its site, through the ``hosted_vllm/`` prefix (the
``openai/`` prefix silently switches /v1/messages to the Responses API), with the tool-fix
callback mounted so Claude Code gets ``tool_use`` blocks from gpt-oss. Secrets never appear in
these files: compose reads them from ``secrets.env`` (mode 0600), the config from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sparkdeploy.errors import ConfigError
from sparkdeploy.vllm_service import VllmService

CALLBACK_MODULE = "litellm_tool_fix"
CALLBACK = f"{CALLBACK_MODULE}.{CALLBACK_MODULE}"
_DB_USER = "llmproxy"
_DB_NAME = "litellm"
_CONTAINER_PORT = 4000


def site_models(
    proxy_host: str, hosts_data: Mapping[str, Mapping[str, Any]],
    services: Mapping[str, tuple[VllmService, ...]],
) -> list[dict[str, Any]]:
    """LiteLLM ``model_list`` entries for every model served in the proxy host's site."""
    site = hosts_data[proxy_host]["proxy_site"]
    entries = []
    for host_name, served in services.items():
        data = hosts_data[host_name]
        heads = [service for service in served if service.serves_http]
        if data["proxy_site"] != site or not heads:
            continue  # another site's, or a cluster's headless worker rank
        # vLLM uses the host network and the proxy a bridge: a same-host vLLM is the gateway.
        if host_name == proxy_host:
            address = "host.docker.internal"
        elif data.get("vllm_expose_to_lan"):
            address = data.get("vllm_address") or host_name
        else:
            raise ConfigError(
                f"host {host_name!r} data", "vllm_expose_to_lan",
                f"the proxy on {proxy_host!r} routes to this host's vLLM over the LAN, but it only "
                "listens for its own host", allowed="true (and consider vllm_api_key_enabled: true)")
        api_key = (f"os.environ/{vllm_key_variable(host_name)}" if data.get("vllm_api_key_enabled")
                   else "unused")
        entries += [{
            "model_name": service.served_name,
            "litellm_params": {
                "model": f"hosted_vllm/{service.served_name}",
                "api_base": f"http://{address}:{service.port}/v1",
                "api_key": api_key,
            },
        } for service in heads]
    return entries


def vllm_key_variable(host_name: str) -> str:
    """The proxy's environment variable holding a vLLM host's API key."""
    return "VLLM_API_KEY_" + re.sub(r"[^A-Za-z0-9]+", "_", host_name).strip("_").upper()


def litellm_config(models: list[dict[str, Any]], data: Mapping[str, Any]) -> dict[str, Any]:
    """The proxy's config.yaml; secrets are referenced from the environment, never inlined."""
    return {
        "model_list": models,
        "litellm_settings": {"drop_params": True, "callbacks": [CALLBACK]},
        "general_settings": {
            # DATABASE_URL is read from the environment (secrets.env) by the proxy itself.
            "master_key": "os.environ/LITELLM_MASTER_KEY",
            "store_model_in_db": False,
            "store_prompts_in_spend_logs": bool(data["proxy_store_prompts"]),
        },
    }


def proxy_compose(data: Mapping[str, Any], mounted_digest: str = "") -> dict[str, Any]:
    """LiteLLM and its Postgres as one compose project.

    ``mounted_digest`` (of config.yaml and the callback) becomes a label: compose does not look
    inside bind-mounted files, so without it a changed route list would leave the proxy running
    the old config after ``docker compose up -d``.
    """
    liveliness = (f"import urllib.request; urllib.request.urlopen("
                  f"'http://127.0.0.1:{_CONTAINER_PORT}/health/liveliness', timeout=5)")
    return {
        "name": "litellm",
        "services": {
            "litellm": {
                "image": data["proxy_image"],
                "container_name": "litellm",
                "command": ["--config", "/app/config.yaml", "--port", str(_CONTAINER_PORT)],
                "ports": [f"{data['proxy_bind_address']}:{data['proxy_port']}:{_CONTAINER_PORT}"],
                "volumes": [
                    "./config.yaml:/app/config.yaml:ro",
                    f"./{CALLBACK_MODULE}.py:/app/{CALLBACK_MODULE}.py:ro",
                ],
                "env_file": ["secrets.env"],
                # The packaged cost map; without this LiteLLM fetches one from the internet.
                "environment": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
                "extra_hosts": ["host.docker.internal:host-gateway"],
                "depends_on": {"litellm-db": {"condition": "service_healthy"}},
                "healthcheck": {
                    "test": ["CMD", "python3", "-c", liveliness],
                    "interval": "15s",
                    "timeout": "10s",
                    "retries": 5,
                    "start_period": "60s",
                },
                "restart": "unless-stopped",
                "labels": {"io.sparkdeploy.mounted-files": mounted_digest},
            },
            "litellm-db": {
                "image": data["proxy_db_image"],
                "container_name": "litellm-db",
                "environment": {"POSTGRES_USER": _DB_USER, "POSTGRES_DB": _DB_NAME},
                "env_file": ["secrets.env"],
                "volumes": ["litellm-db-data:/var/lib/postgresql/data"],
                "healthcheck": {
                    "test": ["CMD", "pg_isready", "-U", _DB_USER, "-d", _DB_NAME],
                    "interval": "10s",
                    "timeout": "5s",
                    "retries": 10,
                },
                "restart": "unless-stopped",
            },
        },
        "volumes": {"litellm-db-data": {}},
    }


def secrets_env(secrets: Mapping[str, str], vllm_keys: Mapping[str, str],
                use_database: bool = True) -> str:
    """The compose env file with the proxy's secrets and the site's vLLM keys (mode 0600).

    Without ``use_database`` the proxy gets no DATABASE_URL and runs stateless (master key only);
    Postgres keeps running with its data.
    """
    password = secrets["proxy_db_password"]
    url = f"postgresql://{_DB_USER}:{quote(password, safe='')}@litellm-db:5432/{_DB_NAME}"
    lines = [
        f"LITELLM_MASTER_KEY={secrets['proxy_master_key']}",
        f"POSTGRES_PASSWORD={password}",
        *([f"DATABASE_URL={url}"] if use_database else []),
    ]
    lines += [f"{vllm_key_variable(host)}={key}" for host, key in sorted(vllm_keys.items())]
    return "\n".join(lines) + "\n"
