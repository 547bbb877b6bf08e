"""The memory budget: reservations plus the OS reserve within the usable memory, and each
reservation holding its model's weights, KV cache and runtime; refusals carry the numbers."""

from __future__ import annotations

import pytest

from sparkdeploy.budget import Need, Reserved, check_budget, check_model, utilization
from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError
from sparkdeploy.memory import AttentionShape
from sparkdeploy.plan import validate_inventory

DATA = documented_defaults()  # 121.6 GiB usable, 8 GiB OS reserve
GPT_OSS = AttentionShape(36, 8, 64)
QWEN3_CODER = AttentionShape(48, 4, 128)


def model(name, memory_gib, need=None, group=None):
    return Reserved(name, f"models[{name!r}].memory_gib", memory_gib, group, need)


def test_reservations_that_fit_pass():
    check_budget("spark", [model("a", 70), model("b", 43.6)], DATA)  # 121.6 exactly


def test_reservations_over_the_usable_memory_are_refused_with_the_sum():
    with pytest.raises(ConfigError) as raised:
        check_budget("spark", [model("", 72), model("coder", 44)], DATA)
    assert str(raised.value) == (
        "host 'spark' data: key 'models': the reservations do not fit: 72 (recipe) + 44 (coder) + 8 "
        "OS reserve = 124 GiB, over the 121.6 GiB usable (spark_usable_memory_gib) (allowed: 2.4 GiB "
        "less in total: smaller reservations (lower max_model_len), an exclusive_group for models "
        "that need not run together, or a model on another Spark)")


def test_an_exclusive_group_counts_once_with_its_largest_member():
    members = [model("big", 70, group="g"), model("bigger", 80, group="g")]
    check_budget("spark", [*members, model("small", 33)], DATA)
    with pytest.raises(ConfigError, match=r"34 \(small\) \+ 80 \(group g: bigger, its largest\)"):
        check_budget("spark", [*members, model("small", 34)], DATA)


def test_a_reservation_must_hold_weights_kv_cache_and_runtime():
    need = Need(61, GPT_OSS.kv_gib(131072, 2), 131072)
    check_model("spark", model("gpt", 76, need))
    with pytest.raises(ConfigError) as raised:
        check_model("spark", model("gpt", 72, need))
    assert "72 GiB cannot hold gpt: 61.0 GiB weights + 9.0 KV cache (max_model_len 131072) + 6 runtime " \
           "= 76.0 GiB (allowed: at least 76 GiB" in str(raised.value)


def test_the_fraction_is_of_the_usable_memory_rounded_down_and_gib_with_upstreams_mod():
    assert utilization(72, DATA, ()) == 0.5921
    assert utilization(72, DATA, ("mods/gpu-mem-util-gb",)) == 72.0


def test_the_seed_plan_gpt_oss_120b_beside_a_30b_coder():
    """README's numbers: at full context the pair does not fit; at 64k each it does."""
    gpt_full = Need(61, GPT_OSS.kv_gib(131072, 2), 131072)
    coder_full = Need(31, QWEN3_CODER.kv_gib(262144, 1), 262144)  # FP8 weights, fp8 KV cache
    assert (round(gpt_full.total_gib, 1), round(coder_full.total_gib, 1)) == (76.0, 49.0)
    with pytest.raises(ConfigError, match=r"76 \(recipe\) \+ 49 \(coder\) \+ 8 OS reserve = 133 GiB"):
        check_budget("spark", [model("", 76, gpt_full), model("coder", 49, coder_full)], DATA)
    gpt, coder = Need(61, GPT_OSS.kv_gib(65536, 2), 65536), Need(31, QWEN3_CODER.kv_gib(65536, 1), 65536)
    assert (round(gpt.total_gib, 1), round(coder.total_gib, 1)) == (71.5, 40.0)
    check_budget("spark", [model("", 72, gpt), model("coder", 41, coder)], DATA)  # 121 of 121.6


def test_the_bf16_coder_recipe_beside_gpt_oss_is_refused_before_any_host_is_touched():
    data = {**DATA, "recipe": "openai-gpt-oss-120b", "vllm_memory_gib": 68,
            "models": [{"name": "coder", "recipe": "qwen3-coder-30b-a3b", "memory_gib": 45,
                        "vllm_params": {"max_model_len": 32768}}]}
    with pytest.raises(ConfigError, match=r"'models\['coder'\].memory_gib': 45 GiB cannot hold coder: "
                                          r"57.0 GiB weights \+ 3.0 KV cache"):
        validate_inventory({"spark": data})
