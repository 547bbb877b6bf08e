"""Will the model fit: the weights alone against vLLM's share (refused), and weights plus the KV
cache of one full sequence (a warning), from profiles or the model's own config.json."""

from __future__ import annotations

import pytest

from sparkdeploy.data import documented_defaults
from sparkdeploy.memory import AttentionShape, gpu_share_gib, shape_from_config
from sparkdeploy.model_repos import ModelRepo
from sparkdeploy.vllm_service import build_vllm_service, config_fit_warning
from sparkdeploy.weights import SnapshotListing, WeightLimit, weights_plan, weights_too_large

GIB = 2**30


def test_the_share_is_a_fraction_of_memory_or_gib_with_upstreams_mod():
    assert gpu_share_gib(0.8, 128, ()) == pytest.approx(102.4)
    assert gpu_share_gib(90, 128, ("mods/gpu-mem-util-gb",)) == 90
    assert gpu_share_gib("0.8", 128, ()) is None and gpu_share_gib(True, 128, ()) is None


@pytest.mark.parametrize(("config", "shape"), [
    ({"num_hidden_layers": 36, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64},
     AttentionShape(36, 8, 64)),
    ({"num_hidden_layers": 48, "num_attention_heads": 32, "hidden_size": 4096}, AttentionShape(48, 32, 128)),
    ({"text_config": {"num_hidden_layers": 30, "num_attention_heads": 16, "num_key_value_heads": 4,
                      "head_dim": 256}, "vision_config": {}}, AttentionShape(30, 4, 256)),
    ({"num_hidden_layers": 2}, None),
])
def test_the_attention_shape_comes_from_the_models_config(config, shape):
    assert shape_from_config(config) == shape


def listing(weight_bytes: int, config=None) -> SnapshotListing:
    tree = {"model-00001.safetensors": {"size": 1, "lfs_size": weight_bytes},
            "config.json": {"size": 100}}
    return SnapshotListing(store="ok", commit="c" * 40, tree=tree, config=config,
                           files={path: entry.get("lfs_size", entry["size"]) for path, entry in tree.items()})


def weights(limit: WeightLimit | None):
    data = {**documented_defaults(), "model_store": "hf_cache"}
    return weights_plan("spark", data, ModelRepo("Qwen/Qwen3.5-397B-A17B-FP8", "model"), "r.yaml", limit)


def test_weights_larger_than_the_share_are_refused_with_the_numbers():
    limit = WeightLimit(int(108.8 * GIB), "gpu_memory_utilization 0.85 of 128 GiB")
    message = weights_too_large(listing(402 * GIB), weights(limit))
    assert message == ("the weights of Qwen/Qwen3.5-397B-A17B-FP8 are 402.0 GiB, more than vLLM's "
                       "108.8 GiB share of the host's memory (gpu_memory_utilization 0.85 of 128 GiB): "
                       "the model cannot load here")
    assert weights_too_large(listing(60 * GIB), weights(limit)) is None
    assert weights_too_large(listing(402 * GIB), weights(None)) is None


def test_a_recipe_carries_its_share_as_the_limit_of_its_model():
    data = {**documented_defaults(), "recipe": "openai-gpt-oss-120b"}
    limit = build_vllm_service("spark", data).weight_limit
    # the project's gpt-oss recipe runs at 0.7 of the pool
    assert limit.bytes == int(0.7 * 128 * GIB)
    assert limit.reason == "gpu_memory_utilization 0.7 of 128 GiB"


def test_a_model_without_a_profile_is_estimated_from_its_config_on_the_host(write_recipe):
    path = write_recipe('recipe_version: "1"\nname: X\nmodel: org/model\ncontainer: vllm-node\n'
                        "defaults:\n  gpu_memory_utilization: 0.5\n  max_model_len: 262144\n"
                        "command: vllm serve org/model --gpu-memory-utilization {gpu_memory_utilization} "
                        "--max-model-len {max_model_len}\n")
    data = {**documented_defaults(), "recipe": path}
    service = build_vllm_service("spark", data)
    config = {"num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128}
    warning = config_fit_warning("spark", service, data, listing(57 * GIB, config))
    assert warning == ("host 'spark': max_model_len 262144 is unlikely to fit: about 87 GiB needed "
                       "(57 weights + 24.0 KV cache + 6 runtime) but gpu_memory_utilization 0.5 gives "
                       "vLLM 64 GiB; lower max_model_len or raise gpu_memory_utilization")
    assert config_fit_warning("spark", service, data, listing(20 * GIB, config)) is None
    assert config_fit_warning("spark", service, data, listing(57 * GIB, None)) is None
