"""Several models on one Spark: each its own port, container, compose project and reservation,
every one routed by the proxy, watched by the watchdog and listed for clients."""

from __future__ import annotations

import pytest
import yaml

from sparkdeploy.clients import client_files
from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import plan_host, validate_inventory
from sparkdeploy.proxy import site_models
from sparkdeploy.watchdog import watch_config

QWEN = "tests/standins/recipes/qwen3.6-35b-a3b-fp8.yaml"
CODER = "tests/standins/recipes/gpt-oss-120b-coder.yaml"
PROFILES = {
    **documented_defaults()["vllm_model_profiles"],
    "Qwen/Qwen3.6-35B-A3B-FP8": {"weights_gib": 35, "layers": 10, "kv_heads": 2, "head_dim": 256,
                                 "max_context": 262144},
}


def spark(**overrides):
    data = {**documented_defaults(), "recipe": "openai-gpt-oss-120b", "proxy_enabled": True,
            "vllm_model_profiles": PROFILES, "vllm_memory_gib": 69,
            "models": [{"name": "qwen", "recipe": QWEN, "memory_gib": 44, "priority": -1}],
            "secrets_dir": "/nonexistent-secrets"}
    return {"spark": {**data, **overrides}}


def test_each_model_gets_its_own_port_container_project_and_fraction_of_its_reservation():
    recipe, qwen = validate_inventory(spark())["spark"]
    assert (recipe.port, recipe.container_name, recipe.compose_dir, recipe.compose["name"]) == (
        8000, "vllm_node", "/opt/sparkdeploy/vllm", "vllm")
    assert (qwen.port, qwen.container_name, qwen.compose_dir, qwen.compose["name"]) == (
        8001, "vllm_node-qwen", "/opt/sparkdeploy/vllm-qwen", "vllm-qwen")
    # GiB of the 121.6 usable, rounded down, also on the command line
    assert recipe.values["gpu_memory_utilization"] == 0.5674
    assert qwen.argv[qwen.argv.index("--gpu-memory-utilization") + 1] == "0.3618"
    assert qwen.argv[qwen.argv.index("--port") + 1] == "8001"


def test_the_less_important_model_is_the_oom_killers_first_victim():
    recipe, qwen = validate_inventory(spark())["spark"]
    assert qwen.compose["services"]["vllm"]["oom_score_adj"] == 1000
    assert recipe.compose["services"]["vllm"]["oom_score_adj"] == 900


def test_the_proxy_routes_watchdog_watches_and_clients_list_every_model(tmp_path):
    data = spark(secrets_dir=str(tmp_path))
    services = validate_inventory(data)
    routes = {entry["model_name"]: entry["litellm_params"]["api_base"]
              for entry in site_models("spark", data, services)}
    assert routes == {"openai/gpt-oss-120b": "http://host.docker.internal:8000/v1",
                      "qwen3.6-35b-a3b": "http://host.docker.internal:8001/v1"}
    watched = watch_config("spark", data, services)["models"]
    assert [(model["name"], model["container"], model["compose_dir"]) for model in watched] == [
        ("openai/gpt-oss-120b", "vllm_node", "/opt/sparkdeploy/vllm"),
        ("qwen3.6-35b-a3b", "vllm_node-qwen", "/opt/sparkdeploy/vllm-qwen")]
    launchers = [path for path in client_files(data, services) if path.endswith(".sh")]
    assert len(launchers) == 2 and any("qwen3-6-35b-a3b" in path for path in launchers), launchers


def test_each_model_has_its_own_compose_project_in_the_plan(tmp_path):
    data = spark(secrets_dir=str(tmp_path))
    plan = plan_host("spark", data, validate_inventory(data))
    assert list(plan.model_files) == ["", "qwen"]
    compose = next(f for f in plan.model_files["qwen"] if f.path.endswith("compose.yaml")).content
    assert yaml.safe_load(compose)["services"]["vllm"]["container_name"] == "vllm_node-qwen"


def test_an_exclusive_group_runs_only_its_chosen_member_and_budgets_its_largest():
    # members of a group may share a port and a served name: they never run together
    models = [{"name": "qwen", "recipe": QWEN, "memory_gib": 44, "exclusive_group": "side"},
              {"name": "qwen-long", "recipe": QWEN, "memory_gib": 44, "exclusive_group": "side",
               "vllm_params": {"max_model_len": 262144, "port": 8001}}]
    services = validate_inventory(spark(models=models, models_active={"side": "qwen-long"}))["spark"]
    assert [service.model_name for service in services] == ["", "qwen-long"]
    with pytest.raises(ConfigError, match=r"'models_active': exclusive group 'side' has no model chosen"):
        validate_inventory(spark(models=models))
    with pytest.raises(ConfigError,
                       match=r"'models_active.side': 'other' is not in this group "
                             r"\(allowed: qwen, qwen-long\)"):
        validate_inventory(spark(models=models, models_active={"side": "other"}))


def test_a_choice_of_group_without_models_beside_the_recipe_is_refused():
    with pytest.raises(ConfigError, match=r"'models_active': chooses among exclusive groups"):
        validate_inventory(spark(models=[], models_active={"side": "qwen"}))


def test_a_member_that_cannot_hold_its_model_is_refused_even_while_it_is_stopped():
    # the coder serves gpt-oss-120b's weights: 44 GiB cannot hold it, and a switch would fail
    models = [{"name": "qwen", "recipe": QWEN, "memory_gib": 44, "exclusive_group": "side"},
              {"name": "coder", "recipe": CODER, "memory_gib": 44, "exclusive_group": "side"}]
    with pytest.raises(ConfigError, match=r"models\['coder'\].memory_gib': 44 GiB cannot hold"):
        validate_inventory(spark(models=models, models_active={"side": "qwen"}))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"vllm_memory_gib": None}, r"'vllm_memory_gib': with models beside the recipe every model needs"),
    ({"models": [{"name": "qwen", "recipe": QWEN}]}, r"'models\[0\]': missing memory_gib"),
    ({"models": [{"name": "Q W", "recipe": QWEN, "memory_gib": 4}]}, r"'models\[0\].name': 'Q W' is not"),
    ({"models": [{"name": "qwen", "recipe": QWEN, "memory_gib": 44, "size": 1}]},
     r"'models\[0\].size': unknown key"),
    ({"models": [{"name": "qwen", "recipe": QWEN, "memory_gib": "44"}]},
     r"'models\[0\].memory_gib': expected number, got string"),
    ({"models": [{"name": "qwen", "recipe": QWEN, "memory_gib": 44,
                  "vllm_params": {"gpu_memory_utilization": 0.3}}]},
     r"'models\[0\].vllm_params.gpu_memory_utilization': memory_gib sets it"),
    ({"models": [{"name": "qwen", "recipe": QWEN, "memory_gib": 44, "vllm_params": {"port": 8000}}]},
     r"'models\['qwen'\]': port 8000 is also the recipe's"),
    ({"models": [{"name": "a", "recipe": QWEN, "memory_gib": 20},
                 {"name": "a", "recipe": QWEN, "memory_gib": 20}]}, r"two models are named 'a'"),
    ({"models": [{"name": "a", "recipe": QWEN, "memory_gib": 42},
                 {"name": "b", "recipe": QWEN, "memory_gib": 42}]},
     r"'models\['b'\]': served model name qwen3.6-35b-a3b is also a's"),
    ({"recipe": None}, r"'models': models are served beside the host's recipe, and it has none"),
    ({"vllm_params": {"gpu_memory_utilization": 0.5}},
     r"'vllm_params.gpu_memory_utilization': vllm_memory_gib sets it"),
])
def test_bad_model_data_is_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message) as raised:
        validate_inventory(spark(**overrides))
    assert "\n" not in str(raised.value)


def test_the_single_recipe_form_is_unchanged():
    data = spark(models=[], vllm_memory_gib=None)
    (service,) = validate_inventory(data)["spark"]
    assert service.values["gpu_memory_utilization"] == 0.70  # the recipe's own
    assert (service.compose["name"], service.container_name, service.model_name) == ("vllm", "vllm_node", "")
    assert service.compose["services"]["vllm"]["oom_score_adj"] == 1000
