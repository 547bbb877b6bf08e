"""Rendering for the seed's two Sparks: golden files, the container contract, the proxy."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import plan_host, validate_inventory

GOLDEN = Path(__file__).parent / "golden"
PEGASUS, STELLA = "pegasus.home.arpa", "stella.home.arpa"


def files_of(data, host_name):
    plan = plan_host(host_name, data, validate_inventory(data))
    return {rendered.path: rendered for rendered in plan.files}


def vllm_service(data, host_name):
    compose = files_of(data, host_name)["/opt/sparkdeploy/vllm/compose.yaml"].content
    return yaml.safe_load(compose)["services"]["vllm"]


@pytest.mark.parametrize(
    ("host_name", "path", "golden"),
    [
        (PEGASUS, "/opt/sparkdeploy/vllm/compose.yaml", "pegasus-vllm-compose.yaml"),
        (STELLA, "/opt/sparkdeploy/vllm/compose.yaml", "stella-vllm-compose.yaml"),
        (PEGASUS, "/opt/sparkdeploy/litellm/compose.yaml", "pegasus-litellm-compose.yaml"),
        (PEGASUS, "/opt/sparkdeploy/litellm/config.yaml", "pegasus-litellm-config.yaml"),
    ],
)
def test_rendered_files_match_reviewed_golden_files(inventory_data, host_name, path, golden):
    content = files_of(inventory_data(), host_name)[path].content
    assert _DIGEST.sub(r"\1<digest>", content) == (GOLDEN / golden).read_text()


_DIGEST = re.compile(r"(io\.sparkdeploy\.mounted-files: )[0-9a-f]{16}")


def test_a_changed_proxy_config_changes_the_proxy_compose_file(inventory_data):
    """compose does not look into bind-mounted files: the digest label makes it recreate LiteLLM."""
    path = "/opt/sparkdeploy/litellm/compose.yaml"
    before = files_of(inventory_data(), PEGASUS)[path].content
    after = files_of(inventory_data(vllm_params={"port": 8001}), PEGASUS)[path].content
    assert _DIGEST.search(before) and before != after


def test_vllm_container_contract(inventory_data):
    service = vllm_service(inventory_data(), PEGASUS)
    assert service["image"] == "vllm-node-mxfp4"
    assert service["network_mode"] == "host" and service["ipc"] == "host"
    assert service["ulimits"]["nofile"] == {"soft": 1048576, "hard": 1048576}
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert service["restart"] == "on-failure:3"
    assert service["oom_score_adj"] == 1000
    assert service["healthcheck"]["test"][-1] == "http://172.17.0.1:8000/health"
    assert service["environment"]["VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8"] == "1"
    assert service["environment"]["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"


def test_cache_mounts_appear_once_and_the_recipe_source_wins(inventory_data):
    # the seed recipe names /home/cluster: outside this service home, so only with the opt-in
    data = inventory_data(service_home="/srv/cluster", recipe_allowed_mounts=["/home/cluster"])
    volumes = vllm_service(data, PEGASUS)["volumes"]
    targets = [volume.split(":")[1] for volume in volumes]
    assert len(targets) == len(set(targets)) == 7
    assert "/home/cluster/.cache/tiktoken_rs:/root/.cache/tiktoken_rs" in volumes
    assert "/srv/cluster/.cache/huggingface:/root/.cache/huggingface" in volumes


def test_nfs_model_store_is_mounted_read_only_as_the_hub_cache(inventory_data):
    service = vllm_service(inventory_data(), STELLA)
    assert "/mnt/models:/models:ro" in service["volumes"]
    assert service["environment"]["HF_HUB_CACHE"] == "/models"
    assert service["image"] == "nvcr.io/nvidia/vllm:25.12-py3"
    assert {"--trust-remote-code", "hermes"} <= set(service["command"])


def test_data_override_changes_the_command(inventory_data):
    data = inventory_data(vllm_params={"max_model_len": 8192, "port": 8001})
    command = vllm_service(data, PEGASUS)["command"]
    assert command[command.index("--max-model-len") + 1] == "8192"
    config = yaml.safe_load(files_of(data, PEGASUS)["/opt/sparkdeploy/litellm/config.yaml"].content)
    assert config["model_list"][0]["litellm_params"]["api_base"] == "http://host.docker.internal:8001/v1"


def test_proxy_routes_to_every_model_of_its_site(inventory_data):
    rendered = files_of(inventory_data(), PEGASUS)["/opt/sparkdeploy/litellm/config.yaml"]
    config = yaml.safe_load(rendered.content)
    routes = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    assert routes["openai/gpt-oss-120b"]["model"] == "hosted_vllm/openai/gpt-oss-120b"
    assert routes["openai/gpt-oss-120b"]["api_base"] == "http://host.docker.internal:8000/v1"
    assert routes["Qwen/Qwen3-Coder-30B-A3B-Instruct"]["api_base"] == "http://stella.home.arpa:8000/v1"
    assert config["litellm_settings"] == {"drop_params": True,
                                          "callbacks": ["litellm_tool_fix.litellm_tool_fix"]}


def test_proxy_secrets_are_generated_once_kept_0600_and_never_in_config(inventory_data, tmp_path):
    first = files_of(inventory_data(), PEGASUS)
    again = files_of(inventory_data(), PEGASUS)
    secrets = first["/opt/sparkdeploy/litellm/secrets.env"]
    assert secrets.mode == "0600" and secrets.secret
    assert secrets.content == again["/opt/sparkdeploy/litellm/secrets.env"].content
    values = dict(line.split("=", 1) for line in secrets.content.splitlines())
    assert values["LITELLM_MASTER_KEY"].startswith("sk-") and len(values["LITELLM_MASTER_KEY"]) > 40
    assert values["POSTGRES_PASSWORD"] in values["DATABASE_URL"]
    for path, rendered in first.items():
        if not rendered.secret:
            assert values["LITELLM_MASTER_KEY"] not in rendered.content, path
            assert values["POSTGRES_PASSWORD"] not in rendered.content, path
    store = tmp_path / "secrets" / f"{PEGASUS}.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


@pytest.mark.parametrize("weak", ["sk-" + "1234", "changeme", "a" * 32])
def test_a_weak_supplied_secret_is_refused(inventory_data, weak):
    data = inventory_data(proxy_master_key=weak)
    with pytest.raises(ConfigError, match=r"key 'proxy_master_key'.*random string of at least 16"):
        files_of(data, PEGASUS)


def test_gpu_memory_above_090_on_mxfp4_is_an_error_unless_allowed(inventory_data):
    with pytest.raises(ConfigError, match=r"vllm_params.gpu_memory_utilization': 0.95 on the mxfp4"):
        validate_inventory(inventory_data(vllm_params={"gpu_memory_utilization": 0.95}))
    allowed = inventory_data(vllm_params={"gpu_memory_utilization": 0.95},
                             vllm_allow_high_gpu_memory_utilization=True)
    assert validate_inventory(allowed)[PEGASUS][0].values["gpu_memory_utilization"] == 0.95


def test_max_model_len_that_cannot_fit_warns_with_the_estimate(inventory_data):
    data = inventory_data(vllm_params={"max_model_len": 262144, "gpu_memory_utilization": 0.5})
    plan = plan_host(PEGASUS, data, validate_inventory(data))
    assert len(plan.warnings) == 1
    assert "max_model_len 262144 is unlikely to fit: about 76 GiB needed" in plan.warnings[0]
    assert "gives vLLM 64 GiB" in plan.warnings[0]
    converged = inventory_data()
    assert plan_host(PEGASUS, converged, validate_inventory(converged)).warnings == []


def test_host_data_of_the_wrong_type_is_an_error_naming_host_and_key(inventory_data):
    with pytest.raises(ConfigError, match=r"host 'pegasus\.home\.arpa'.*key 'proxy_port': expected integer"):
        validate_inventory(inventory_data(proxy_port="4000"))


def test_cluster_only_recipe_is_refused_on_a_single_spark(inventory_data, write_recipe):
    path = write_recipe('recipe_version: "1"\nname: Big\nmodel: big/model\ncontainer: vllm-node\n'
                        "cluster_only: true\n"
                        "command: vllm serve big/model\n")
    with pytest.raises(ConfigError, match=r"key 'cluster_only'.*needs a cluster"):
        validate_inventory(inventory_data(recipe=path))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("-p 8000:8000", "unsupported docker flag '-p' (allowed: -v/--volume"),
        ("--network bridge", "unsupported docker flag '--network'"),
        ("--volume /only-one-part", "volume '/only-one-part' is not SOURCE:TARGET[:MODE]"),
        ("--ulimit memlock=lots", "ulimit 'memlock=lots' is not NAME=SOFT[:HARD]"),
    ],
)
def test_unsupported_extra_docker_args_are_errors(inventory_data, write_recipe, extra, expected):
    path = write_recipe('recipe_version: "1"\nname: X\nmodel: org/model\ncontainer: vllm-node\n'
                        f"extra_docker_args: {extra}\ncommand: vllm serve org/model\n")
    with pytest.raises(ConfigError, match="key 'extra_docker_args'") as error:
        validate_inventory(inventory_data(recipe=path))
    assert expected in str(error.value)


def test_extra_docker_args_map_onto_compose_keys(inventory_data, write_recipe):
    path = write_recipe(
        'recipe_version: "1"\nname: X\nmodel: org/model\ncontainer: vllm-node\n'
        "command: vllm serve org/model\n"
        "extra_docker_args: --ulimit memlock=-1:-1 --shm-size=64g -e NCCL_DEBUG=INFO --cap-add IPC_LOCK\n")
    service = vllm_service(inventory_data(recipe=path, recipe_allow_privileges=True), PEGASUS)
    assert service["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    assert service["shm_size"] == "64g"
    assert service["environment"]["NCCL_DEBUG"] == "INFO"
    assert service["cap_add"] == ["IPC_LOCK"]


def test_mods_run_once_per_container_before_vllm(inventory_data, write_recipe):
    path = write_recipe('recipe_version: "1"\nname: X\nmodel: org/model\ncontainer: vllm-node\n'
                        "mods: [mods/fix-a]\n"
                        "command: vllm serve org/model --port 8000\n")
    service = vllm_service(inventory_data(recipe=path), PEGASUS)
    script = service["command"][2]
    assert service["command"][:2] == ["bash", "-c"]
    assert "if [ ! -e /workspace/.sparkdeploy-mods-applied ]" in script
    assert script.endswith("exec vllm serve org/model --port 8000 --host 172.17.0.1")
    mount = "/opt/sparkdeploy/spark-vllm-docker/mods/fix-a:/opt/sparkdeploy-mods/fix-a:ro"
    assert mount in service["volumes"]


def test_render_command_writes_files_without_contacting_hosts(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "sparkdeploy.cli", "render", STELLA, "--out", str(out),
         "--data", "vllm_params={\"max_model_len\": 32768}",
         "--data", f"secrets_dir={tmp_path / 'secrets'}"],
        capture_output=True, text=True, check=True,
    )
    compose = out / "opt/sparkdeploy/vllm/compose.yaml"
    assert str(compose) in result.stdout
    command = yaml.safe_load(compose.read_text())["services"]["vllm"]["command"]
    assert command[command.index("--max-model-len") + 1] == "32768"


def test_render_of_pegasus_writes_the_secret_file_0600(tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "sparkdeploy.cli", "render", PEGASUS, "--out", str(out),
                    "--data", f"secrets_dir={tmp_path / 'secrets'}"], capture_output=True, check=True)
    assert stat.S_IMODE(os.stat(out / "opt/sparkdeploy/litellm/secrets.env").st_mode) == 0o600
    assert (out / "opt/sparkdeploy/litellm/litellm_tool_fix.py").read_text() == (
        Path(__file__).parents[2] / "files/litellm_tool_fix.py").read_text()


def test_render_of_an_unknown_host_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sparkdeploy.cli", "render", "nope", "--out", str(tmp_path)],
        capture_output=True, text=True)
    assert result.returncode == 1
    assert "inventory.py: no host named 'nope' (allowed: pegasus.home.arpa, " in result.stderr


def test_vllm_api_key_reaches_vllm_and_the_proxy_only_through_0600_files(inventory_data):
    data = inventory_data(vllm_api_key_enabled=True)
    pegasus = files_of(data, PEGASUS)
    vllm_secrets = pegasus["/opt/sparkdeploy/vllm/secrets.env"]
    assert vllm_secrets.mode == "0600" and vllm_secrets.secret
    key = vllm_secrets.content.strip().removeprefix("VLLM_API_KEY=")
    assert len(key) > 30
    assert yaml.safe_load(pegasus["/opt/sparkdeploy/vllm/compose.yaml"].content)[
        "services"]["vllm"]["env_file"] == ["secrets.env"]
    proxy_env = pegasus["/opt/sparkdeploy/litellm/secrets.env"].content
    assert f"VLLM_API_KEY_PEGASUS_HOME_ARPA={key}\n" in proxy_env
    assert "VLLM_API_KEY_STELLA_HOME_ARPA=" in proxy_env
    config = yaml.safe_load(pegasus["/opt/sparkdeploy/litellm/config.yaml"].content)
    assert {m["litellm_params"]["api_key"] for m in config["model_list"]} == {
        "os.environ/VLLM_API_KEY_PEGASUS_HOME_ARPA", "os.environ/VLLM_API_KEY_STELLA_HOME_ARPA"}
    stella_key = files_of(data, STELLA)["/opt/sparkdeploy/vllm/secrets.env"].content.strip()
    assert stella_key.removeprefix("VLLM_API_KEY=") in proxy_env
    for path, rendered in pegasus.items():
        if not rendered.secret:
            assert key not in rendered.content, path


def test_compose_command_equals_the_seed_command_flag_for_flag(inventory_data):
    service = vllm_service(inventory_data(vllm_expose_to_lan=True), PEGASUS)
    assert service["command"] == (GOLDEN / "seed-command.txt").read_text().split()


def test_vllm_listens_on_the_docker_bridge_unless_exposed_to_the_lan(inventory_data):
    service = vllm_service(inventory_data(), PEGASUS)
    command = service["command"]
    assert command[command.index("--host") + 1] == "172.17.0.1"
    assert service["healthcheck"]["test"][-1] == "http://172.17.0.1:8000/health"
    exposed = vllm_service(inventory_data(vllm_expose_to_lan=True), PEGASUS)
    assert exposed["command"][exposed["command"].index("--host") + 1] == "0.0.0.0"
    assert exposed["healthcheck"]["test"][-1] == "http://127.0.0.1:8000/health"


def test_a_proxy_cannot_route_to_a_vllm_that_is_not_exposed(inventory_data):
    data = inventory_data()
    data[STELLA]["vllm_expose_to_lan"] = False
    with pytest.raises(ConfigError, match=r"host 'stella\.home\.arpa' data: key 'vllm_expose_to_lan'"):
        files_of(data, PEGASUS)


def test_listen_address_is_not_a_recipe_parameter(inventory_data):
    with pytest.raises(ConfigError, match=r"vllm_params\.host'.*follows vllm_expose_to_lan"):
        validate_inventory(inventory_data(vllm_params={"host": "0.0.0.0"}))


X_RECIPE = 'recipe_version: "1"\nname: X\nmodel: org/model\ncontainer: vllm-node\n'


@pytest.mark.parametrize(("extra", "problem", "opt_in"), [
    ("-v /:/host:rw", "mounts /, outside the service home and the model store", "recipe_allowed_mounts"),
    ("-v /home/cluster/../../root/.ssh:/x", "mounts /root/.ssh, outside", "recipe_allowed_mounts"),
    ("-v relative:/x", "the host side must be an absolute path", None),
    ("--privileged", "--privileged gives the container power over the host", "recipe_allow_privileges"),
    ("--cap-add SYS_ADMIN", "--cap-add gives the container power", "recipe_allow_privileges"),
    ("--device /dev/mem", "--device gives the container power", "recipe_allow_privileges"),
    ("--security-opt=apparmor=unconfined", "--security-opt gives", "recipe_allow_privileges"),
])
def test_a_recipe_is_not_root_on_the_host_without_saying_so(inventory_data, write_recipe, extra,
                                                            problem, opt_in):
    path = write_recipe(X_RECIPE + f"extra_docker_args: {extra}\ncommand: vllm serve org/model\n")
    with pytest.raises(ConfigError, match="key 'extra_docker_args'") as error:
        validate_inventory(inventory_data(recipe=path))
    assert problem in str(error.value)
    if opt_in:
        assert opt_in in str(error.value)


def test_the_operator_can_opt_in_to_a_recipes_mounts_and_privileges(inventory_data, write_recipe):
    path = write_recipe(X_RECIPE + "extra_docker_args: -v /srv/datasets:/data:ro --privileged "
                        "--cap-add SYS_NICE\ncommand: vllm serve org/model\n")
    service = vllm_service(inventory_data(recipe=path, recipe_allowed_mounts=["/srv/datasets"],
                                          recipe_allow_privileges=True), PEGASUS)
    assert "/srv/datasets:/data:ro" in service["volumes"]
    assert service["privileged"] is True and service["cap_add"] == ["SYS_NICE"]


@pytest.mark.parametrize("mod", ["../../root/.ssh", "/etc", "mods/../../x", "mods/a b", "mods/$(id)"])
def test_mods_stay_inside_the_upstream_checkout(inventory_data, write_recipe, mod):
    path = write_recipe(X_RECIPE + f"mods: [{mod!r}]\ncommand: vllm serve org/model\n")
    with pytest.raises(ConfigError, match=r"key 'mods\[0\]'.*is not a directory inside the upstream"):
        validate_inventory(inventory_data(recipe=path))


def test_dollars_reach_the_container_unchanged_through_compose(inventory_data, write_recipe, tmp_path):
    path = write_recipe(X_RECIPE + "env:\n  PROMPT_PREFIX: 'costs $5, see ${HOME}'\n"
                        "command: vllm serve org/model --chat-template-content-format '$x'\n")
    data = inventory_data(recipe=path)
    plan = plan_host(PEGASUS, data, validate_inventory(data))
    compose = next(f for f in plan.vllm_files if f.path.endswith("compose.yaml")).content
    assert "costs $$5, see $${HOME}" in compose and "$$x" in compose
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        (tmp_path / "compose.yaml").write_text(compose)
        resolved = subprocess.run(["docker", "compose", "-f", str(tmp_path / "compose.yaml"),
                                   "config", "--format", "json"], capture_output=True, text=True)
        environment = json.loads(resolved.stdout)["services"]["vllm"]["environment"]
        assert environment["PROMPT_PREFIX"] == "costs $5, see ${HOME}"
