"""Two Sparks as one: topology data, each rank's command and environment, and the refusals."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from upstream_catalogue import UPSTREAM, names

from sparkdeploy.cluster import clusters
from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError
from sparkdeploy.link import failed_pings, netplan_document, parse_pings, ping_script
from sparkdeploy.plan import plan_host, validate_inventory

RECIPE = """\
recipe_version: "1"
name: Pair
model: org/model
container: vllm-node
cluster_only: true
defaults:
  port: 8000
  host: 0.0.0.0
  tensor_parallel: 2
command: |
  vllm serve org/model --port {port} --host {host} \\
    -tp {tensor_parallel} --distributed-executor-backend ray
"""


def pair(recipe: str, **overrides) -> dict[str, dict]:
    base = {**documented_defaults(), "recipe": recipe, "cluster_group": "pair",
            "vllm_expose_to_lan": True, "secrets_dir": "/nonexistent"}
    return {"spark-a": {**base, "proxy_enabled": True, **overrides.get("a", {})},
            "spark-b": {**base, **overrides.get("b", {})}}


@pytest.fixture
def recipe(write_recipe):
    return write_recipe(RECIPE)


def test_the_first_host_is_the_head_and_twins_get_a_subnet_each(recipe):
    cluster = clusters(pair(recipe))["pair"]
    assert [node.host_name for node in cluster.nodes] == ["spark-a", "spark-b"]
    assert [(twin.interface, str(twin.address)) for twin in cluster.head.twins] == [
        ("enp1s0f1np1", "192.168.177.11/24"), ("enP2p1s0f1np1", "192.168.178.11/24")]
    assert cluster.workers[0].ip == "192.168.177.12" and (cluster.mtu, cluster.master_port) == (9000, 29501)


def test_each_rank_runs_upstreams_command_with_the_no_ray_flags(recipe):
    services = validate_inventory(pair(recipe))
    head, worker = services["spark-a"][0], services["spark-b"][0]
    common = ["vllm", "serve", "org/model", "--port", "8000", "--host", "0.0.0.0", "-tp", "2",
              "--nnodes", "2"]
    assert head.argv == [*common, "--node-rank", "0", "--master-addr", "192.168.177.11",
                         "--master-port", "29501"]
    assert worker.argv == [*common, "--node-rank", "1", "--master-addr", "192.168.177.11",
                           "--master-port", "29501", "--headless"]
    assert head.serves_http and not worker.serves_http


def test_each_rank_gets_upstreams_per_node_environment_and_unlimited_memlock(recipe):
    worker = validate_inventory(pair(recipe))["spark-b"][0].compose["services"]["vllm"]
    environment = worker["environment"]
    assert environment["VLLM_HOST_IP"] == "192.168.177.12"
    for key in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME", "UCX_NET_DEVICES",
                "OMPI_MCA_btl_tcp_if_include", "MN_IF_NAME"):
        assert environment[key] == "enp1s0f1np1", key
    assert environment["NCCL_IB_HCA"] == "rocep1s0f1,roceP2p1s0f1"
    assert environment["NCCL_IB_DISABLE"] == "0"
    assert worker["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    assert worker["healthcheck"] == {"disable": True}


def test_the_proxy_routes_to_the_head_only(recipe):
    data = pair(recipe)
    plan = plan_host("spark-a", data, validate_inventory(data))
    config = yaml.safe_load(next(f.content for f in plan.proxy_files if f.path.endswith("config.yaml")))
    assert [entry["litellm_params"]["api_base"] for entry in config["model_list"]] == [
        "http://host.docker.internal:8000/v1"]


def test_ray_mode_starts_ray_first_and_serves_with_the_ray_backend(recipe):
    services = validate_inventory(pair(recipe, a={"cluster_executor": "ray"},
                                       b={"cluster_executor": "ray"}))
    head = services["spark-a"][0].compose["services"]["vllm"]["command"][2]
    assert head.startswith("ray start --head --port 29501 --node-ip-address 192.168.177.11")
    assert head.splitlines()[-1].endswith("-tp 2 --distributed-executor-backend ray")
    worker = services["spark-b"][0].compose["services"]["vllm"]["command"][2]
    assert worker == ("exec ray start --block --address=192.168.177.11:29501 --node-ip-address "
                      "192.168.177.12 --object-store-memory 1073741824 --num-cpus 2 --disable-usage-stats")
    assert services["spark-b"][0].compose["services"]["vllm"]["environment"]["RAY_NODE_IP_ADDRESS"] == (
        "192.168.177.12")


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"b": {"cluster_group": None}}, "only 'spark-a' is in it; a cluster is two or more Sparks"),
    ({"b": {"cluster_link_addresses": ["192.168.177.11/24", "192.168.178.12/24"]}},
     "192.168.177.11 is also spark-a's link address"),
    ({"a": {"cluster_link_addresses": ["192.168.177.11/24", "192.168.177.21/24"]}},
     "two twins share a subnet"),
    ({"a": {"cluster_link_addresses": ["192.168.177.11"]}}, "one address per link interface"),
    ({"b": {"cluster_link_addresses": ["192.168.177.0/24", "192.168.178.12/24"]}},
     "network or broadcast address"),
    ({"b": {"vllm_params": {"port": 9000}}}, "key 'vllm_params': differs from the head"),
    ({"a": {"cluster_link_mtu": 100000}, "b": {"cluster_link_mtu": 100000}}, "is not an MTU"),
    ({"a": {"cluster_link_interfaces": ["enp1s0f1np1", "enp1s0f1np1"]}}, "an interface is named twice"),
])
def test_bad_topology_is_one_line_before_any_host_is_touched(recipe, overrides, problem):
    with pytest.raises(ConfigError) as error:
        validate_inventory(pair(recipe, **overrides))
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_a_recipe_for_more_nodes_than_the_cluster_has_is_refused(write_recipe):
    path = write_recipe(RECIPE.replace("tensor_parallel: 2", "tensor_parallel: 4"))
    with pytest.raises(ConfigError, match=r"runs on 4 GPU.*cluster 'pair' has 2 Sparks"):
        validate_inventory(pair(path))


def test_a_solo_only_recipe_is_refused_on_a_cluster(write_recipe):
    path = write_recipe(RECIPE.replace("cluster_only: true", "solo_only: true"))
    with pytest.raises(ConfigError, match=r"key 'solo_only'.*is in cluster 'pair'"):
        validate_inventory(pair(path))


def test_the_single_spark_refusal_names_the_cluster_data_to_add(recipe):
    with pytest.raises(ConfigError) as error:
        validate_inventory({"spark": {**documented_defaults(), "recipe": recipe}})
    assert "needs a cluster (2 Sparks" in str(error.value)
    assert "cluster_group" in str(error.value) and "group_data/<group>.py" in str(error.value)


def test_the_weights_may_fill_every_ranks_share(recipe):
    head = validate_inventory(pair(recipe))["spark-a"][0]
    assert head.weight_limit is None  # the recipe gives no gpu_memory_utilization


# --- upstream's two-node recipes ------------------------------------------------------------


def upstream_cluster_argv(path: Path, nodes: int, rank: int, head_ip: str) -> list[str]:
    """What upstream's launch-cluster.sh (no-Ray) hands vllm on ``rank``: the recipe formatted
    with its defaults, bash's line continuations, the executor flag dropped, the rank flags."""
    recipe = yaml.safe_load(path.read_text())
    lines = [line for line in recipe["command"].format(**recipe["defaults"]).splitlines()
             if not line.lstrip().startswith("#")]
    argv = shlex.split(re.sub(r"\\[ \t]*\n", " ", "\n".join(lines)).rstrip().rstrip("\\"))
    executor = "--distributed-executor-backend"
    kept = [arg for index, arg in enumerate(argv)
            if arg != executor and not (index and argv[index - 1] == executor)]
    flags = ["--nnodes", str(nodes), "--node-rank", str(rank), "--master-addr", head_ip,
             "--master-port", "29501"]
    return [*kept, *flags, *(["--headless"] if rank else [])]


def two_node_recipes() -> list[str]:
    if not UPSTREAM.is_dir():
        return ["(missing)"]
    found = []
    for name in names():
        recipe = yaml.safe_load((UPSTREAM / name).read_text())
        defaults = recipe.get("defaults") or {}
        if not recipe.get("solo_only") and defaults.get("tensor_parallel", 1) * defaults.get(
                "pipeline_parallel", 1) == 2:
            found.append(name)
    return found


def test_upstream_has_its_ten_two_node_cluster_recipes():
    cluster_only = [name for name in two_node_recipes()
                    if yaml.safe_load((UPSTREAM / name).read_text()).get("cluster_only")]
    assert len(cluster_only) == 10


@pytest.mark.parametrize("name", two_node_recipes())
def test_every_two_node_upstream_recipe_renders_for_two_sparks(name):
    data = pair(str(UPSTREAM / name))
    services = validate_inventory(data)
    for rank, host_name in enumerate(("spark-a", "spark-b")):
        # the head's --host follows vllm_expose_to_lan (0.0.0.0, as upstream's defaults)
        assert services[host_name][0].argv == upstream_cluster_argv(
            UPSTREAM / name, 2, rank, "192.168.177.11"), host_name


def test_the_sandbox_pair_is_a_valid_cluster_on_the_container_link_interfaces():
    """What ``sparkdeploy sandbox up --nodes 2`` records renders as a tp-2 cluster."""
    from sparkdeploy.sandbox import links
    from sparkdeploy.sandbox.state import HOST_NAME, node_names
    from sparkdeploy.standins import sandbox_data

    hosts = {name: {**sandbox_data(), "secrets_dir": "/nonexistent", **links.node_data(HOST_NAME, rank)}
             for rank, name in enumerate(node_names(2))}
    services = validate_inventory(hosts)
    head, worker = (services[name][0] for name in node_names(2))
    assert head.serves_http and not worker.serves_http
    assert head.cluster.head.interface == "eth1" and worker.node.ip == "192.168.177.12"
    assert "--headless" in worker.argv and "--headless" not in head.argv
    assert shlex.join(["--tensor-parallel-size", "2"]) in shlex.join(head.argv)


def test_a_cabled_pair_without_a_recipe_yet_still_gets_its_link():
    """Cabling and proving the link comes before choosing what the pair serves."""
    data = pair(None)
    assert validate_inventory(data) == {}
    plan = plan_host("spark-b", data, {})
    assert plan.vllm is None and plan.cluster is not None and plan.node.rank == 1


def test_the_netplan_file_gives_each_twin_its_static_address_and_the_mtu(recipe):
    cluster = clusters(pair(recipe, b={"cluster_link_mtu": 9000}))["pair"]
    document = yaml.safe_load(netplan_document(cluster, cluster.workers[0]))
    assert document["network"]["version"] == 2
    assert document["network"]["ethernets"] == {
        "enp1s0f1np1": {"dhcp4": False, "dhcp6": False, "link-local": [], "mtu": 9000,
                        "addresses": ["192.168.177.12/24"]},
        "enP2p1s0f1np1": {"dhcp4": False, "dhcp6": False, "link-local": [], "mtu": 9000,
                          "addresses": ["192.168.178.12/24"]},
    }


def test_the_link_proof_pings_every_peer_over_every_twin_unfragmented_at_the_mtu(recipe):
    cluster = clusters(pair(recipe))["pair"]
    script = ping_script(cluster, cluster.head)
    assert script.count("ping -M do -s 8972 ") == 2
    assert "-I enp1s0f1np1 192.168.177.12" in script and "-I enP2p1s0f1np1 192.168.178.12" in script
    results = parse_pings(["ok enp1s0f1np1 spark-b 192.168.177.12 rtt",
                           "fail enP2p1s0f1np1 spark-b 192.168.178.12 message too long"])
    problem = failed_pings(results, cluster.mtu)
    assert problem.startswith("spark-b (192.168.178.12) does not answer over enP2p1s0f1np1 at MTU 9000")
    assert failed_pings(results[:1], cluster.mtu) is None and failed_pings([], 9000)
