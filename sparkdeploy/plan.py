"""What the deploy will place on each host, computed for the whole inventory at once.

Validating every host together means one bad recipe or data value stops the run before any
host changes, and the proxy sees every model of its site. ``deploy.py`` places these files;
``sparkdeploy render`` writes them to a local folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sparkdeploy.budget import Reserved, check_budget, profile_need, reservation_label
from sparkdeploy.cluster import Cluster, ClusterNode, cluster_of, clusters
from sparkdeploy.data import PROJECT_ROOT, check_types
from sparkdeploy.data_values import check_values
from sparkdeploy.errors import ConfigError
from sparkdeploy.models import model_entries
from sparkdeploy.proxy import (
    CALLBACK_MODULE,
    litellm_config,
    proxy_compose,
    secrets_env,
    site_models,
)
from sparkdeploy.relay import check_relay_data, relay_documents
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


# Every model server of each host, by host name, in start order (the recipe first).
Services = Mapping[str, tuple[VllmService, ...]]


@dataclass(frozen=True)
class HostPlan:
    host_name: str
    models: tuple[VllmService, ...] = ()
    # each model's compose project files, by model name
    model_files: dict[str, list[RenderedFile]] = field(default_factory=dict)
    proxy_files: list[RenderedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # the cluster this host is cabled into, also before it has a recipe (the link comes first)
    cluster: Cluster | None = None
    # the sparkwatch package and its settings (watchdog, watcher, status)
    watch_files: list[RenderedFile] = field(default_factory=list)
    # the relay's compose project (empty: no relay on this host)
    relay_files: list[RenderedFile] = field(default_factory=list)

    @property
    def vllm(self) -> VllmService | None:
        """The host's recipe (a cluster node's rank, or a single Spark's first model)."""
        return self.models[0] if self.models else None

    @property
    def vllm_files(self) -> list[RenderedFile]:
        return [rendered for files in self.model_files.values() for rendered in files]

    @property
    def node(self) -> ClusterNode | None:
        return self.cluster.node(self.host_name) if self.cluster else None

    @property
    def files(self) -> list[RenderedFile]:
        return self.vllm_files + self.proxy_files + self.relay_files


def validate_inventory(hosts_data: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[VllmService, ...]]:
    """Check every host's data, cluster topology, recipes and memory budget; return the model
    servers that run, by host name (every rank of a cluster: only heads serve HTTP)."""
    for host_name, data in hosts_data.items():
        check_types(host_name, data)
        check_values(host_name, data)
        check_watch_data(host_name, data, hosts_data)
        check_relay_data(host_name, data)
    found = clusters(hosts_data)
    services = {}
    for host_name in hosts_data:
        every = _host_models(host_name, hosts_data[host_name], cluster_of(host_name, found))
        if every:
            services[host_name] = tuple(service for service in every if service.active)
    return services


def _host_models(host_name: str, data: Mapping[str, Any], cluster: Cluster | None) -> list[VllmService]:
    """Every model the host declares (also those an exclusive group keeps stopped, so a switch
    is checked before it is made), within one budget, each on its own port under its own name."""
    every = []
    for entry in model_entries(host_name, data):
        service = build_vllm_service(host_name, entry.data, cluster)
        if service is not None:
            every.append(dataclasses.replace(service, exclusive_group=entry.group, active=entry.active))
    _check_distinct(host_name, every)
    if len(every) > 1 or (every and every[0].memory_gib is not None):
        check_budget(host_name, [_reserved(service) for service in every], data)
    return every


def _check_distinct(host_name: str, every: list[VllmService]) -> None:
    """Models that may run together need their own port and served name (members of one
    exclusive group never do, so a switch may keep both)."""
    for index, service in enumerate(every):
        for earlier in every[:index]:
            if service.exclusive_group and service.exclusive_group == earlier.exclusive_group:
                continue
            for attribute, what in (("port", "port"), ("served_name", "served model name")):
                value = getattr(service, attribute)
                if value == getattr(earlier, attribute):
                    raise ConfigError(f"host {host_name!r} data", f"models[{service.model_name!r}]",
                                      f"{what} {value} is also {earlier.model_name or 'the recipe'}'s",
                                      allowed=f"a {what} of its own (vllm_params in its entry)")


def _reserved(service: VllmService) -> Reserved:
    memory = service.memory_gib if service.memory_gib is not None else 0.0
    return Reserved(service.model_name, reservation_label(service.model_name), memory,
                    service.exclusive_group,
                    profile_need(service.recipe.model, service.values, service.argv, service.data))


def plan_host(host_name: str, hosts_data: Mapping[str, Mapping[str, Any]],
              services: Services) -> HostPlan:
    """Render one host's files (secrets are generated here, so only for hosts being deployed)."""
    data = hosts_data[host_name]
    models = services.get(host_name, ())
    warnings = [warning for service in models for warning in service.warnings]
    model_files = {service.model_name: _vllm_files(host_name, service, data) for service in models}
    proxy_files, relay_files = [], []
    if data.get("proxy_enabled"):
        site = site_models(host_name, hosts_data, services)
        if not site:
            warnings.append(f"host {host_name!r} runs the proxy but no host in site "
                            f"{data['proxy_site']!r} serves a model")
        vllm_keys = {
            name: host_secrets(name, hosts_data[name], VLLM_SECRETS)["vllm_api_key"]
            for name, served in services.items()
            if hosts_data[name]["proxy_site"] == data["proxy_site"]
            and any(service.serves_http for service in served)
            and hosts_data[name].get("vllm_api_key_enabled")
        }
        proxy_files = _proxy_files(host_name, data, site, vllm_keys)
        if data.get("relay_enabled"):
            relay_files = _relay_files(host_name, data, site, services, hosts_data)
    return HostPlan(host_name, models, model_files, proxy_files, warnings,
                    cluster_of(host_name, clusters(hosts_data)),
                    _watch_files(host_name, hosts_data, services), relay_files)


def _watch_files(host_name: str, hosts_data: Mapping[str, Mapping[str, Any]],
                 services: Services) -> list[RenderedFile]:
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
    """One model's compose project (every model of a host shares the host's vLLM API key)."""
    directory = service.compose_dir
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


def _relay_files(host_name: str, data: Mapping[str, Any], site: list[dict[str, Any]],
                 services: Services, hosts_data: Mapping[str, Mapping[str, Any]]) -> list[RenderedFile]:
    directory = data["relay_compose_dir"]
    compose, documents = relay_documents(host_name, data, site, services, hosts_data)
    files = [RenderedFile(f"{directory}/compose.yaml", _compose_yaml(compose, "relay"))]
    for path, (content, secret) in documents.items():
        files.append(RenderedFile(f"{directory}/{path}", content, mode="0600" if secret else "0644",
                                  secret=secret))
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
