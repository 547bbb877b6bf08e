"""Whether a model fits in vLLM's share of a Spark's unified memory, in GiB with the numbers shown.

vLLM takes ``gpu_memory_utilization`` of the 128 GB pool (or that many GiB with upstream's
``gpu-mem-util-gb`` mod) and must hold the weights, the KV cache of at least one
``max_model_len`` sequence and its runtime (activations, CUDA graphs). Weights alone over the
share can never load: that is refused once the real size is known. Weights plus KV cache over it
usually fails at start: that is a warning, since the KV estimate ignores sliding windows and
hybrid attention. The attention shape comes from ``vllm_model_profiles`` or the model's own
``config.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GIB = 2**30
# Memory vLLM needs beyond weights and KV cache (activations, CUDA graphs, allocator slack).
RUNTIME_OVERHEAD_GIB = 6
GPU_MEM_GB_MOD = "gpu-mem-util-gb"


@dataclass(frozen=True)
class AttentionShape:
    """What one token's KV cache costs: layers x KV heads x head size, for K and V."""

    layers: int
    kv_heads: int
    head_dim: int

    def kv_gib(self, tokens: int, dtype_bytes: int) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes * tokens / GIB


def gpu_share_gib(utilization: object, memory_gib: float, mods: tuple[str, ...]) -> float | None:
    """vLLM's share in GiB; None when ``gpu_memory_utilization`` is not a number."""
    if not isinstance(utilization, (int, float)) or isinstance(utilization, bool):
        return None
    if any(mod.rstrip("/").endswith(GPU_MEM_GB_MOD) for mod in mods):
        return float(utilization)  # with this mod upstream reads the value as GiB
    return utilization * memory_gib


def shape_from_profile(profile: Mapping[str, Any]) -> AttentionShape:
    return AttentionShape(int(profile["layers"]), int(profile["kv_heads"]), int(profile["head_dim"]))


def shape_from_config(config: Mapping[str, Any]) -> AttentionShape | None:
    """The attention shape from a Hugging Face ``config.json`` (multimodal: its ``text_config``)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), Mapping) else config
    layers = text.get("num_hidden_layers")
    heads = text.get("num_attention_heads")
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or (
        text["hidden_size"] // heads if isinstance(text.get("hidden_size"), int) and heads else None)
    values = (layers, kv_heads, head_dim)
    if not all(isinstance(value, int) and value > 0 for value in values):
        return None
    return AttentionShape(layers, kv_heads, head_dim)


def kv_dtype_bytes(kv_cache_dtype: str | None) -> int:
    return 1 if (kv_cache_dtype or "").startswith("fp8") else 2


def fit_warning(who: str, weights_gib: float, shape: AttentionShape, max_model_len: int,
                dtype_bytes: int, share_gib: float, share_reason: str, nodes: int = 1) -> str | None:
    """A warning when weights + one full sequence's KV cache + runtime exceed the share; on a
    cluster each of ``nodes`` ranks holds its part of both."""
    kv_gib = shape.kv_gib(max_model_len, dtype_bytes) / nodes
    weights_gib /= nodes
    needed = weights_gib + kv_gib + RUNTIME_OVERHEAD_GIB
    if needed <= share_gib:
        return None
    per_node = f" per node of {nodes}" if nodes > 1 else ""
    return (f"{who}: max_model_len {max_model_len} is unlikely to fit: about {needed:.0f} GiB "
            f"needed{per_node} ({weights_gib:.0f} weights + {kv_gib:.1f} KV cache + "
            f"{RUNTIME_OVERHEAD_GIB} runtime) but {share_reason} gives vLLM {share_gib:.0f} GiB; "
            "lower max_model_len or raise gpu_memory_utilization")
