"""Which models a host serves: its ``recipe``, and the ``models`` served beside it.

Each model is the host's data seen through that model's own keys (recipe, vllm_params,
model_revision, memory reservation, container, compose project), so every model is built and
deployed exactly like a single Spark's (:mod:`sparkdeploy.vllm_service`). Models beside the
recipe get their container, compose directory and project name from the host's with ``-<name>``
appended, and a port of their own. Members of an ``exclusive_group`` never run together:
``models_active`` names the one that runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkdeploy.errors import ConfigError, type_name

PRIMARY = ""  # the name of the host's ``recipe`` among its models
PRIMARY_PROJECT = "vllm"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,30}\Z")
_ENTRY_KEYS = {
    "name": (str,), "recipe": (str,), "memory_gib": (float, int), "vllm_params": (dict,),
    "model_revision": (str,), "priority": (int,), "exclusive_group": (str,),
}
_REQUIRED = ("name", "recipe", "memory_gib")


@dataclass(frozen=True)
class ModelEntry:
    """One model of a host, and the host data as that model sees it."""

    name: str
    data: Mapping[str, Any]
    group: str | None = None
    active: bool = True


def model_entries(host_name: str, data: Mapping[str, Any]) -> list[ModelEntry]:
    """Every model the host's data declares, active or not, the recipe first."""
    more = data.get("models") or []
    source = f"host {host_name!r} data"
    if not more:
        if data.get("models_active"):
            raise ConfigError(source, "models_active", "chooses among exclusive groups of models, "
                              "and this host has no models beside its recipe",
                              allowed="{} (or models with exclusive_group)")
        return [ModelEntry(PRIMARY, data)] if data.get("recipe") else []
    if data.get("cluster_group"):
        raise ConfigError(source, "models", "several models on one host is for a single Spark; "
                          f"this host is in cluster {data['cluster_group']!r}",
                          allowed="models = [] on cluster nodes")
    if not data.get("recipe"):
        raise ConfigError(source, "models", "models are served beside the host's recipe, and it "
                          "has none", allowed="recipe = \"<first model>\" with vllm_memory_gib")
    if data.get("vllm_memory_gib") is None:
        raise ConfigError(source, "vllm_memory_gib", "with models beside the recipe every model "
                          "needs a memory reservation in GiB, the recipe's too",
                          allowed="a number of GiB, e.g. 72")
    entries = [_entry(source, index, entry) for index, entry in enumerate(more)]
    names = [entry["name"] for entry in entries]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise ConfigError(source, "models", f"two models are named {duplicate!r}",
                          allowed="a different name per model")
    chosen = _choices(source, entries, data.get("models_active") or {})
    priorities = [int(data["vllm_priority"]), *(int(entry.get("priority", 0)) for entry in entries)]
    found = [ModelEntry(PRIMARY, {**data, "vllm_oom_score_adj": _oom_score(data, priorities[0], priorities)})]
    for index, entry in enumerate(entries):
        group = entry.get("exclusive_group")
        overlay = _overlay(data, index, entry, _oom_score(data, priorities[index + 1], priorities))
        runs = chosen.get(group, entry["name"]) == entry["name"]
        found.append(ModelEntry(entry["name"], overlay, group, runs))
    return found


def active_entries(host_name: str, data: Mapping[str, Any]) -> list[ModelEntry]:
    return [entry for entry in model_entries(host_name, data) if entry.active]


def project_name(data: Mapping[str, Any]) -> str:
    """The compose project name of the model ``data`` describes (distinct per model)."""
    return str(data.get("vllm_project_name") or PRIMARY_PROJECT)


def _entry(source: str, index: int, entry: object) -> dict[str, Any]:
    where = f"models[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(source, where, f"expected a mapping, got {type_name(entry)}",
                          allowed="{'name': ..., 'recipe': ..., 'memory_gib': ...}")
    for key, value in entry.items():
        if key not in _ENTRY_KEYS:
            raise ConfigError(source, f"{where}.{key}", "unknown key",
                              allowed=", ".join(sorted(_ENTRY_KEYS)))
        if not isinstance(value, _ENTRY_KEYS[key]) or isinstance(value, bool):
            raise ConfigError(source, f"{where}.{key}",
                              f"expected {type_name(_ENTRY_KEYS[key][0]())}, got {type_name(value)}")
    missing = [key for key in _REQUIRED if key not in entry]
    if missing:
        raise ConfigError(source, where, f"missing {', '.join(missing)}",
                          allowed="name, recipe and memory_gib on every model")
    if not _NAME.match(entry["name"]):
        raise ConfigError(source, f"{where}.name", f"{entry['name']!r} is not a model name",
                          allowed="lower-case letters, digits and '-', at most 31")
    if not 0 < entry["memory_gib"] < 10_000:
        raise ConfigError(source, f"{where}.memory_gib", f"{entry['memory_gib']} is not a reservation",
                          allowed="GiB above 0")
    params = entry.get("vllm_params") or {}
    if "gpu_memory_utilization" in params:
        raise ConfigError(source, f"{where}.vllm_params.gpu_memory_utilization",
                          "memory_gib sets it (the reservation in GiB, turned into vLLM's fraction)",
                          allowed="memory_gib only")
    return dict(entry)


def _choices(source: str, entries: list[dict[str, Any]], active: Mapping[str, Any]) -> dict[str, str]:
    """The member of each exclusive group that runs, checked against the groups' members."""
    groups: dict[str, list[str]] = {}
    for entry in entries:
        if entry.get("exclusive_group"):
            groups.setdefault(entry["exclusive_group"], []).append(entry["name"])
    for group, choice in active.items():
        if group not in groups:
            raise ConfigError(source, f"models_active.{group}", "no model has this exclusive_group",
                              allowed=", ".join(sorted(groups)) or "none: no model has an exclusive_group")
        if choice not in groups[group]:
            raise ConfigError(source, f"models_active.{group}", f"{choice!r} is not in this group",
                              allowed=", ".join(groups[group]))
    for group, members in groups.items():
        if group not in active:
            raise ConfigError(source, "models_active", f"exclusive group {group!r} has no model "
                              "chosen to run", allowed=f"models_active = {{{group!r}: one of "
                              f"{', '.join(map(repr, members))}}}")
    return {group: str(choice) for group, choice in active.items()}


def _overlay(data: Mapping[str, Any], index: int, entry: Mapping[str, Any], oom_score: int) -> dict[str, Any]:
    """The host data as the model beside the recipe sees it."""
    name = entry["name"]
    params = {"port": int(data["models_first_port"]) + index, **(entry.get("vllm_params") or {})}
    return {
        **data,
        "recipe": entry["recipe"],
        "vllm_params": params,
        "model_revision": entry.get("model_revision"),
        "vllm_memory_gib": entry["memory_gib"],
        "vllm_container_name": f"{data['vllm_container_name']}-{name}",
        "vllm_compose_dir": f"{data['vllm_compose_dir']}-{name}",
        "vllm_project_name": f"{PRIMARY_PROJECT}-{name}",
        "vllm_model_name": name,
        "vllm_oom_score_adj": oom_score,
    }


def _oom_score(data: Mapping[str, Any], priority: int, priorities: list[int]) -> int:
    """The least important model keeps ``vllm_oom_score_adj`` (earlyoom's and the kernel's first
    victim); each more important priority level is ``vllm_oom_priority_step`` lower."""
    below = len({level for level in priorities if level < priority})
    return max(int(data["vllm_oom_score_adj"]) - below * int(data["vllm_oom_priority_step"]), -999)
