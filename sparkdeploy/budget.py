"""One memory budget for every model a Spark serves, in GiB, checked before any host is touched.

``--gpu-memory-utilization`` is a fraction of a pool the OS and the page cache share, and not a
hard cap, so each model gets a reservation in GiB (``vllm_memory_gib``, ``memory_gib`` in
``models``) that the deploy turns into its fraction of the usable memory. The rule:

- the reservations plus the OS reserve fit the usable memory (an exclusive group counts once,
  with its largest member, so any switch among its members fits too);
- each reservation holds the model's weights, the KV cache of one ``max_model_len`` sequence and
  vLLM's runtime. With a ``vllm_model_profiles`` entry this is checked here; otherwise once the
  snapshot is on the host (its real size and ``config.json``), before vLLM starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparkdeploy.errors import ConfigError
from sparkdeploy.memory import (
    GPU_MEM_GB_MOD,
    RUNTIME_OVERHEAD_GIB,
    AttentionShape,
    kv_dtype_bytes,
    shape_from_profile,
)
from sparkdeploy.model_repos import flag_value
from sparkdeploy.models import PRIMARY


@dataclass(frozen=True)
class Need:
    """What one engine needs at least, in GiB."""

    weights_gib: float
    kv_gib: float
    max_model_len: int

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_gib + RUNTIME_OVERHEAD_GIB

    def describe(self) -> str:
        return (f"{self.weights_gib:.1f} GiB weights + {self.kv_gib:.1f} KV cache (max_model_len "
                f"{self.max_model_len}) + {RUNTIME_OVERHEAD_GIB} runtime = {self.total_gib:.1f} GiB")


@dataclass(frozen=True)
class Reserved:
    """One model in the budget (the budget reads only these, so it is testable on its own)."""

    name: str
    label: str  # where the reservation is set: vllm_memory_gib or models['<name>'].memory_gib
    memory_gib: float
    group: str | None = None
    need: Need | None = None


def utilization(memory_gib: float, data: Mapping[str, Any], mods: Sequence[str]) -> float:
    """vLLM's ``--gpu-memory-utilization`` for a reservation: its fraction of the usable memory
    (rounded down), or the GiB themselves with upstream's ``gpu-mem-util-gb`` mod."""
    if any(mod.rstrip("/").endswith(GPU_MEM_GB_MOD) for mod in mods):
        return float(memory_gib)
    return math.floor(memory_gib / float(data["spark_usable_memory_gib"]) * 10_000) / 10_000


def need(weights_gib: float, shape: AttentionShape, max_model_len: int, argv: Sequence[str]) -> Need:
    dtype = kv_dtype_bytes(flag_value(list(argv), "--kv-cache-dtype"))
    return Need(weights_gib, shape.kv_gib(max_model_len, dtype), max_model_len)


def profile_need(model: str | None, values: Mapping[str, Any], argv: Sequence[str],
                 data: Mapping[str, Any]) -> Need | None:
    """The need from ``vllm_model_profiles`` (None: the model has no entry)."""
    profile = (data.get("vllm_model_profiles") or {}).get(model or "")
    if not profile:
        return None
    max_len = values.get("max_model_len")
    if not isinstance(max_len, int) or isinstance(max_len, bool):
        max_len = int(profile.get("max_context", 0))
    return need(float(profile["weights_gib"]), shape_from_profile(profile), max_len, argv)


def reservation_label(name: str) -> str:
    return "vllm_memory_gib" if name == PRIMARY else f"models[{name!r}].memory_gib"


def check_model(host_name: str, model: Reserved, need_found: Need | None = None) -> None:
    """The reservation holds the model (``need_found``: from its snapshot on the host)."""
    found = need_found or model.need
    if found is None or found.total_gib <= model.memory_gib:
        return
    raise ConfigError(f"host {host_name!r} data", model.label,
                      f"{model.memory_gib:g} GiB cannot hold {model.name or 'the recipe'}: "
                      f"{found.describe()}",
                      allowed=f"at least {math.ceil(found.total_gib)} GiB, a lower max_model_len, "
                      "or a smaller quantization")


def check_budget(host_name: str, models: Sequence[Reserved], data: Mapping[str, Any]) -> None:
    """Raise with the numbers when the reservations do not fit or a model does not fit its own."""
    for model in models:
        check_model(host_name, model)
    usable, reserve = float(data["spark_usable_memory_gib"]), float(data["spark_os_reserve_gib"])
    parts = [(model.memory_gib, model.name or "recipe") for model in models if not model.group]
    groups: dict[str, list[Reserved]] = {}
    for model in models:
        if model.group:
            groups.setdefault(model.group, []).append(model)
    for group, members in groups.items():
        largest = max(members, key=lambda member: member.memory_gib)
        parts.append((largest.memory_gib, f"group {group}: {largest.name}, its largest"))
    total = sum(amount for amount, _ in parts) + reserve
    if total <= usable:
        return
    sums = " + ".join(f"{amount:g} ({what})" for amount, what in parts)
    raise ConfigError(f"host {host_name!r} data", "models",
                      f"the reservations do not fit: {sums} + {reserve:g} OS reserve = {total:g} GiB, "
                      f"over the {usable:g} GiB usable (spark_usable_memory_gib)",
                      allowed=f"{total - usable:g} GiB less in total: smaller reservations (lower "
                      "max_model_len), an exclusive_group for models that need not run together, "
                      "or a model on another Spark")
