"""What the deploy will place on each host, computed for the whole inventory at once.

Validating every host together means one bad recipe or data value stops the run before any
host changes, and the proxy sees every model of its site. ``deploy.py`` places these files;
``sparkdeploy render`` writes them to a local folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sparkdeploy.cluster import Cluster, ClusterNode, cluster_of, clusters
from sparkdeploy.data import PROJECT_ROOT, check_types
from sparkdeploy.data_values import check_values
from sparkdeploy.proxy import (
    CALLBACK_MODULE,
    litellm_config,
    proxy_compose,
    secrets_env,
    site_models,
)
from sparkdeploy.secrets import VLLM_SECRETS, host_secrets
from sparkdeploy.vllm_service import VllmService, build_vllm_service
from sparkdeploy.watchdog import (
    CONFIG_FILE,
    INSTALL_DIR,
    SECRETS_FILE,
    check_watch_data,
    package_files,
    to_json,
    watch_config,
    watch_secrets,
)

CALLBACK_SOURCE = PROJECT_ROOT / "files" / f"{CALLBACK_MODULE}.py"
_HEADER = "# Rendered by sparkdeploy ({what}); local edits are overwritten by the next deploy.\n"


@dataclass(frozen=True)
class RenderedFile:
    """One file for a host. ``secret`` files are never shown in diffs or logs."""

    path: str
    content: str
    mode: str = "0644"
    user: str = "root"
    group: str = "root"
    secret: bool = False
    present: bool = True  # False: the deploy removes it (a secret no longer wanted)


@dataclass(frozen=True)
class HostPlan:
    host_name: str
    vllm: VllmService | None
    vllm_files: list[RenderedFile] = field(default_factory=list)
    proxy_files: list[RenderedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # the cluster this host is cabled into, also before it has a recipe (the link comes first)
    cluster: Cluster | None = None
    # the sparkwatch package and its settings (watchdog, watcher, status)
    watch_files: list[RenderedFile] = field(default_factory=list)

    @property
    def node(self) -> ClusterNode | None:
        return self.cluster.node(self.host_name) if self.cluster else None

    @property
    def files(self) -> list[RenderedFile]:
        return self.vllm_files + self.proxy_files


def validate_inventory(hosts_data: Mapping[str, Mapping[str, Any]]) -> dict[str, VllmService]:
    """Check every host's data, cluster topology and recipe; return the model servers by host
    name (every rank of a cluster: only heads serve HTTP)."""
    for host_name, data in hosts_data.items():
        check_types(host_name, data)
        check_values(host_name, data)
        check_watch_data(host_name, data, hosts_data)
    found = clusters(hosts_data)
    return {
        host_name: service for host_name, data in hosts_data.items()
        if (service := build_vllm_service(host_name, data, cluster_of(host_name, found))) is not None
    }


def plan_host(host_name: str, hosts_data: Mapping[str, Mapping[str, Any]],
              services: Mapping[str, VllmService]) -> HostPlan:
    """Render one host's files (secrets are generated here, so only for hosts being deployed)."""
    data = hosts_data[host_name]
    service = services.get(host_name)
    warnings = list(service.warnings) if service else []
    vllm_files = _vllm_files(host_name, service, data) if service else []
    proxy_files = []
    if data.get("proxy_enabled"):
        models = site_models(host_name, hosts_data, services)
        if not models:
            warnings.append(f"host {host_name!r} runs the proxy but no host in site "
                            f"{data['proxy_site']!r} serves a model")
        vllm_keys = {
            name: host_secrets(name, hosts_data[name], VLLM_SECRETS)["vllm_api_key"]
            for name, service in services.items()
            if hosts_data[name]["proxy_site"] == data["proxy_site"] and service.serves_http
            and hosts_data[name].get("vllm_api_key_enabled")
        }
        proxy_files = _proxy_files(host_name, data, models, vllm_keys)
    return HostPlan(host_name, service, vllm_files, proxy_files, warnings,
                    cluster_of(host_name, clusters(hosts_data)),
                    _watch_files(host_name, hosts_data, services))


def _watch_files(host_name: str, hosts_data: Mapping[str, Mapping[str, Any]],
                 services: Mapping[str, VllmService]) -> list[RenderedFile]:
    """The sparkwatch package and its settings, on hosts that serve a model or watch others."""
    if host_name not in services and not hosts_data[host_name].get("watcher_enabled"):
        return []
    secrets = watch_secrets(host_name, hosts_data)
    return [
        *(RenderedFile(f"{INSTALL_DIR}/sparkwatch/{name}", text) for name, text in package_files().items()),
        RenderedFile(CONFIG_FILE, to_json(watch_config(host_name, hosts_data, services))),
        RenderedFile(SECRETS_FILE, to_json(secrets), mode="0600", secret=True, present=bool(secrets)),
    ]


def _yaml(document: Any, what: str) -> str:
    return _HEADER.format(what=what) + yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, width=1000)


def _compose_yaml(document: Any, what: str) -> str:
    """A compose file: compose interpolates ``$VAR`` everywhere, so every literal ``$`` (a recipe's
    command or environment) is written ``$$`` and reaches the container unchanged."""
    return _yaml(_escape_dollars(document), what)


def _escape_dollars(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: _escape_dollars(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape_dollars(item) for item in value]
    return value


def _vllm_files(host_name: str, service: VllmService, data: Mapping[str, Any]) -> list[RenderedFile]:
    directory = data["vllm_compose_dir"]
    files = [RenderedFile(f"{directory}/compose.yaml",
                          _compose_yaml(service.compose, f"vLLM, recipe {service.recipe.name!r}"))]
    if data.get("vllm_api_key_enabled"):
        key = host_secrets(host_name, data, VLLM_SECRETS)["vllm_api_key"]
        files.append(RenderedFile(f"{directory}/secrets.env", f"VLLM_API_KEY={key}\n",
                                  mode="0600", secret=True))
    else:
        files.append(RenderedFile(f"{directory}/secrets.env", "", mode="0600", secret=True,
                                  present=False))
    return files


def _proxy_files(host_name: str, data: Mapping[str, Any], models: list[dict[str, Any]],
                 vllm_keys: Mapping[str, str]) -> list[RenderedFile]:
    directory = data["proxy_compose_dir"]
    config = _yaml(litellm_config(models, data), "LiteLLM proxy")
    callback = CALLBACK_SOURCE.read_text()
    digest = hashlib.sha256((config + callback).encode()).hexdigest()[:16]
    return [
        RenderedFile(f"{directory}/compose.yaml",
                     _compose_yaml(proxy_compose(data, digest), "LiteLLM proxy")),
        RenderedFile(f"{directory}/config.yaml", config),
        RenderedFile(f"{directory}/{CALLBACK_MODULE}.py", callback),
        RenderedFile(f"{directory}/secrets.env",
                     secrets_env(host_secrets(host_name, data), vllm_keys,
                                 bool(data.get("proxy_use_database", True))), mode="0600", secret=True),
    ]
