"""Client configuration for every model a proxy serves: Claude Code, OpenCode, Anthropic SDK,
and Claude Code's MCP file for a relay.

Rendered on the workstation from the inventory, so the files always name the models and ports
the deploy actually serves. No secret is written: every file reads the proxy key from an
environment variable.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.proxy import site_models
from sparkdeploy.relay import relay_url
from sparkdeploy.secrets import secret_store_path
from sparkdeploy.vllm_service import VllmService, served_context

# PowerShell ends a single-quoted string at any of these; each is escaped by doubling it.
_PS1_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")


def ps1_quote(value: str) -> str:
    """A PowerShell single-quoted (verbatim) string: nothing inside is expanded."""
    for quote in _PS1_QUOTES:
        value = value.replace(quote, quote * 2)
    return f"'{value}'"


_TEMPLATES = Environment(loader=FileSystemLoader(PROJECT_ROOT / "templates" / "clients"),
                         undefined=StrictUndefined, keep_trailing_newline=True)
# Values reach launchers that run on client machines: each language quotes them its own way.
_TEMPLATES.filters.update(sh=shlex.quote, ps1=ps1_quote, py=repr)


def proxy_url(host_name: str, data: Mapping[str, Any]) -> str:
    """The URL clients use for a host's proxy (no trailing /v1: Anthropic clients add paths)."""
    return (data.get("proxy_client_url") or f"http://{host_name}:{data['proxy_port']}").rstrip("/")


def client_files(hosts_data: Mapping[str, Mapping[str, Any]],
                 services: Mapping[str, tuple[VllmService, ...]]) -> dict[str, tuple[str, int]]:
    """Relative path -> (content, mode) for every proxy host in the inventory."""
    by_name = {service.served_name: service for served in services.values() for service in served}
    files: dict[str, tuple[str, int]] = {}
    for host_name, data in hosts_data.items():
        if not data.get("proxy_enabled"):
            continue
        base_url = proxy_url(host_name, data)
        names = list(dict.fromkeys(m["model_name"] for m in site_models(host_name, hosts_data, services)))
        context = {"base_url": base_url, "key_env": data["clients_key_env"],
                   "secret_store": secret_store_path(host_name, data)}
        for name in names:
            for filename, rendered in launcher_files(name, **context).items():
                files[f"{host_name}/{filename}"] = rendered
        opencode = opencode_config(host_name, data, [by_name[name] for name in names])
        files[f"{host_name}/opencode.json"] = (json.dumps(opencode, indent=2) + "\n", 0o644)
        if data.get("relay_enabled"):
            files[f"{host_name}/claude-mcp.json"] = (json.dumps(relay_mcp_config(host_name, data),
                                                                indent=2) + "\n", 0o644)
    return files


def relay_mcp_config(host_name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Claude Code's MCP configuration for the host's relay (``claude --mcp-config FILE``, or
    merged into a project's .mcp.json): Claude Code expands ``${VAR}`` from the environment, so
    the file holds no key."""
    return {"mcpServers": {"sparkrelay": {
        "type": "http",
        "url": f"{relay_url(host_name, data)}/mcp",
        "headers": {"Authorization": "Bearer ${" + data["clients_relay_key_env"] + "}"},
    }}}


def launcher_files(model: str, base_url: str, key_env: str,
                   secret_store: object) -> dict[str, tuple[str, int]]:
    """File name -> (content, mode) of the launchers for one model of a proxy."""
    slug = _slug(model)
    files = {}
    for template, filename, mode in (
        ("claude.sh.j2", f"claude-{slug}.sh", 0o755),
        ("claude.ps1.j2", f"claude-{slug}.ps1", 0o644),
        ("anthropic_sdk_example.py.j2", f"anthropic-{slug}.py", 0o644),
    ):
        files[filename] = (_TEMPLATES.get_template(template).render(
            model=model, filename=filename, base_url=base_url, key_env=key_env,
            secret_store=secret_store), mode)
    return files


def opencode_config(host_name: str, data: Mapping[str, Any], services: list[VllmService]) -> dict:
    """An opencode.json provider block for the proxy's OpenAI-compatible endpoint."""
    models = {}
    for service in services:
        entry: dict[str, Any] = {"name": f"{service.served_name} on {service.host_name}"}
        max_len = served_context(service, data)
        if max_len:
            # Below max_model_len: OpenCode compacts at this size, the server rejects above it.
            context = int(max_len * data["clients_context_fraction"])
            entry["limit"] = {"context": context, "output": min(data["clients_output_tokens"], context // 2)}
        models[service.served_name] = entry
    provider = f"spark-{_slug(data['proxy_site'])}"
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {provider: {
            "npm": "@ai-sdk/openai-compatible",
            "name": f"DGX Spark ({data['proxy_site']}) via LiteLLM on {host_name}",
            "options": {"baseURL": f"{proxy_url(host_name, data)}/v1",
                        "apiKey": "{env:" + data["clients_key_env"] + "}"},
            "models": models,
        }},
    }


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
