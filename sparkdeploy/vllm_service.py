"""The vLLM compose service a host runs, built from its recipe and host data.

It reproduces what upstream's ``launch-cluster.sh`` does with ``docker run`` (host network,
``ipc: host``, all GPUs, nofile 1048576, the cache mounts, the base environment) as a compose
project, and fixes what the seeds found wrong with it: recipe ``env`` goes through the container
environment (the launch script loses inner quotes), restarts are bounded (``unless-stopped``
loops and leaks unified memory), and vLLM is the preferred OOM victim.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sparkdeploy.budget import Need, need, reservation_label, utilization
from sparkdeploy.cluster import Cluster, ClusterNode
from sparkdeploy.cluster_ranks import (
    check_parallel_size,
    rank_argv,
    rank_environment,
    ray_head_script,
    ray_worker_argv,
)
from sparkdeploy.data import service_home, upstream_checkout_dir
from sparkdeploy.docker_args import apply_docker_args, recipe_policy
from sparkdeploy.errors import ConfigError
from sparkdeploy.image_plan import ImagePlan, image_plan
from sparkdeploy.memory import (
    GIB,
    GPU_MEM_GB_MOD,
    fit_warning,
    gpu_share_gib,
    kv_dtype_bytes,
    shape_from_config,
    shape_from_profile,
)
from sparkdeploy.model_repos import ModelRepo, command_repos, flag_value
from sparkdeploy.models import PRIMARY, project_name
from sparkdeploy.recipes import (
    Recipe,
    command_argv,
    load_recipe,
    placeholder_values,
    render_command,
)
from sparkdeploy.weights import SnapshotListing, WeightLimit, listing_weight_bytes, revision_args

MXFP4_GPU_MEMORY_LIMIT = 0.90
_MOD_SENTINEL = "/workspace/.sparkdeploy-mods-applied"
_MODS_SOURCE_DIR = "/opt/sparkdeploy-mods"
_WILDCARDS = ("0.0.0.0", "::", "")
_SERVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,199}")


@dataclass(frozen=True)
class VllmService:
    """Everything the deploy and the proxy need to know about one host's model server."""

    host_name: str
    recipe: Recipe
    values: Mapping[str, Any]
    command: str
    argv: list[str]
    served_name: str
    port: int
    bind_address: str
    compose: dict[str, Any]
    # every Hugging Face repository vLLM loads (the recipe's model first)
    repos: tuple[ModelRepo, ...]
    image: ImagePlan
    # vLLM's memory share: the model's weights alone must fit in it
    weight_limit: WeightLimit | None
    # the cluster this host is a node of, and which node (None: a single Spark)
    cluster: Cluster | None = None
    node: ClusterNode | None = None
    warnings: list[str] = field(default_factory=list)
    # the host data as this model sees it (sparkdeploy.models), and the model's name on its host
    data: Mapping[str, Any] = field(default_factory=dict)
    model_name: str = PRIMARY
    exclusive_group: str | None = None
    active: bool = True

    @property
    def compose_dir(self) -> str:
        return str(self.data["vllm_compose_dir"])

    @property
    def container_name(self) -> str:
        return str(self.compose["services"]["vllm"]["container_name"])

    @property
    def memory_gib(self) -> float | None:
        """The model's reservation in GiB (None: its recipe's gpu_memory_utilization decides)."""
        reserved = self.data.get("vllm_memory_gib")
        return None if reserved is None else float(reserved)

    @property
    def local_url(self) -> str:
        """Where vLLM answers as seen from its own host."""
        return local_url(self.bind_address, self.port)

    @property
    def serves_http(self) -> bool:
        """A single Spark, or a cluster's head: workers are headless ranks."""
        return self.node is None or self.node.rank == 0


def local_address(bind_address: str) -> str:
    """The address a server bound to ``bind_address`` answers on for its own host."""
    return "127.0.0.1" if bind_address in _WILDCARDS else bind_address


def local_url(bind_address: str, port: int) -> str:
    """The URL of a server bound to ``bind_address`` as seen from the same host."""
    return f"http://{local_address(bind_address)}:{port}"


def served_context(service: VllmService, data: Mapping[str, Any]) -> int | None:
    """The context a model serves: the recipe's max_model_len, else its profile's max_context."""
    value = service.values.get("max_model_len")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    profile = (data.get("vllm_model_profiles") or {}).get(service.recipe.model or "", {})
    return profile.get("max_context")


def build_vllm_service(host_name: str, data: Mapping[str, Any],
                       cluster: Cluster | None = None) -> VllmService | None:
    """Validate the host's recipe and data and build its compose project (None: serves no model).

    In a cluster every node gets its rank's command and environment; only the head serves HTTP.
    """
    if not data.get("recipe"):
        return None
    source = f"host {host_name!r} data"
    recipe = load_recipe(str(data["recipe"]))
    _check_placement(recipe, host_name, cluster)
    node = cluster.node(host_name) if cluster else None
    overrides = data.get("vllm_params") or {}
    if "host" in overrides:
        raise ConfigError(source, "vllm_params.host", "vLLM's listen address follows vllm_expose_to_lan",
                          allowed="vllm_expose_to_lan: true (0.0.0.0) or false (vllm_private_address)")
    bind = "0.0.0.0" if data.get("vllm_expose_to_lan") else data["vllm_private_address"]
    solo = cluster is None
    reserved = data.get("vllm_memory_gib")
    if reserved is not None:
        if "gpu_memory_utilization" in overrides:
            raise ConfigError(source, "vllm_params.gpu_memory_utilization", "vllm_memory_gib sets it "
                              "(the reservation in GiB, turned into vLLM's fraction)",
                              allowed="one of vllm_memory_gib and gpu_memory_utilization")
        overrides = {**overrides, "gpu_memory_utilization": utilization(reserved, data, recipe.mods)}
    values = {**placeholder_values(recipe, overrides, solo=solo, source=source), "host": bind}
    command = render_command(recipe, values, solo=solo)
    argv = _with_flag(command_argv(command, recipe.source), "--host", bind)
    if reserved is not None:  # also where the recipe's command writes a number, not the placeholder
        argv = _with_flag(argv, "--gpu-memory-utilization", str(values["gpu_memory_utilization"]))
    repos = weights_repos(recipe, argv, data)
    argv += revision_args(argv, data)
    _check_gpu_memory(recipe, values, data, source)
    if cluster is not None and node is not None:
        check_parallel_size(argv, cluster, recipe.source)
        argv = rank_argv(argv, cluster, node)

    served_name = _served_name(argv, recipe)
    port = _port(argv, values, recipe)
    warnings = [*recipe.warnings, *_memory_warnings(recipe, values, argv, data, host_name, cluster)]
    image = image_plan(host_name, recipe.container, recipe.build_args, recipe.source, data)
    compose = _compose(recipe, argv, local_url(bind, port), data, cluster, node)
    limit = _weight_limit(_share(recipe, values, data), data, cluster)
    return VllmService(host_name, recipe, values, command, argv, served_name, port, bind, compose,
                       repos, image, limit, cluster, node, warnings, data, _model_name(data))


def _model_name(data: Mapping[str, Any]) -> str:
    return str(data.get("vllm_model_name") or PRIMARY)


def _check_placement(recipe: Recipe, host_name: str, cluster: Cluster | None) -> None:
    """solo_only recipes run on one Spark, cluster_only ones on a cluster."""
    if recipe.cluster_only and cluster is None:
        nodes = recipe.defaults.get("tensor_parallel", 2)
        raise ConfigError(recipe.source, "cluster_only",
                          f"host {host_name!r} is a single Spark and this recipe needs a cluster "
                          f"({nodes} Sparks at its default tensor_parallel)",
                          allowed="cluster_group = \"<group>\" in group_data/<group>.py for the "
                          "Sparks that serve it together, head first, with their link data "
                          "(README: Two Sparks)")
    if recipe.solo_only and cluster is not None:
        raise ConfigError(recipe.source, "solo_only",
                          f"host {host_name!r} is in cluster {cluster.name!r} and this recipe runs "
                          "on one Spark only", allowed="a recipe without solo_only: true, or no "
                          "cluster_group on this host")


def weights_repos(recipe: Recipe, argv: list[str], data: Mapping[str, Any]) -> tuple[ModelRepo, ...]:
    """Every repository vLLM loads, the recipe's ``model`` first at ``model_revision``.

    With ``HF_HUB_OFFLINE=1`` a repository the deploy did not fetch is a failed start, so one the
    recipe does not name in ``model`` (a draft model, a tokenizer) is fetched too, at the revision
    the command pins for it (``"revision"`` in ``--speculative-config``, ``--tokenizer-revision``),
    else its default branch, which is what vLLM then loads.
    """
    found = command_repos(argv, recipe.source)
    if not recipe.model:
        named = found[0].repo_id if found else "ORG/NAME"
        raise ConfigError(recipe.source, "model", "the recipe names no model, so the deploy cannot "
                          "tell which weights to bring before vLLM starts (offline)",
                          allowed=f"model: {named}")
    repos = [ModelRepo(recipe.model, "model", data.get("model_revision"))]
    repos += [repo for repo in found if repo.repo_id != recipe.model]
    return tuple(repos)


def _check_gpu_memory(recipe: Recipe, values: Mapping[str, Any], data: Mapping[str, Any],
                      source: str) -> None:
    utilization = values.get("gpu_memory_utilization")
    if not isinstance(utilization, (int, float)) or isinstance(utilization, bool):
        return
    if any(mod.rstrip("/").endswith(GPU_MEM_GB_MOD) for mod in recipe.mods):
        return  # with this mod upstream reads the value as GiB, not a fraction
    if not 0 < utilization <= 1:
        raise ConfigError(source, "vllm_params.gpu_memory_utilization",
                          f"{utilization} is not a fraction of memory", allowed="0 < value <= 1")
    is_mxfp4 = "--exp-mxfp4" in recipe.build_args or recipe.container.endswith("mxfp4")
    if (is_mxfp4 and utilization > MXFP4_GPU_MEMORY_LIMIT
            and not data.get("vllm_allow_high_gpu_memory_utilization")):
        raise ConfigError(
            source, "vllm_params.gpu_memory_utilization",
            f"{utilization} on the mxfp4 image ({recipe.container}) leaves too little memory for "
            "its overhead and OOMs the box",
            allowed=f"at most {MXFP4_GPU_MEMORY_LIMIT}, or set "
            "vllm_allow_high_gpu_memory_utilization: true",
        )


def _with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag`` set to ``value`` (replaced where the recipe gives it, else appended)."""
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return [*argv[:index + 1], value, *argv[index + 2:]]
        if arg.startswith(flag + "="):
            return [*argv[:index], f"{flag}={value}", *argv[index + 1:]]
    return [*argv, flag, value]


def _served_name(argv: list[str], recipe: Recipe) -> str:
    """The model id clients see: --served-model-name, else the model vLLM was told to serve."""
    served = flag_value(argv, "--served-model-name")
    if not served and argv[:2] == ["vllm", "serve"] and len(argv) > 2 and not argv[2].startswith("-"):
        served = argv[2]
    served = served or flag_value(argv, "--model") or recipe.model
    if not served:
        raise ConfigError(recipe.source, "command",
                          "cannot tell which model the command serves",
                          allowed="'vllm serve MODEL ...', --served-model-name or a 'model' key")
    if not _SERVED_NAME.fullmatch(served):
        # the name reaches client launchers (.sh, .ps1, .py) that run on other machines
        raise ConfigError(recipe.source, "command", f"served model name {served!r} is not allowed",
                          allowed="letters, digits and ._:/+- (e.g. openai/gpt-oss-120b)")
    return served


def _port(argv: list[str], values: Mapping[str, Any], recipe: Recipe) -> int:
    port = flag_value(argv, "--port") or values.get("port") or 8000
    try:
        return int(port)
    except ValueError as exc:
        raise ConfigError(recipe.source, "command", f"--port {port!r} is not a number") from exc


def _share(recipe: Recipe, values: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[float, str] | None:
    """vLLM's memory share on this host in GiB, and where it comes from."""
    reserved = data.get("vllm_memory_gib")
    if reserved is not None:
        return float(reserved), f"{reservation_label(_model_name(data))} {reserved}"
    utilization = values.get("gpu_memory_utilization")
    share = gpu_share_gib(utilization, data.get("spark_memory_gib", 128), recipe.mods)
    return None if share is None else (share, f"gpu_memory_utilization {utilization}")


def _weight_limit(share: tuple[float, str] | None, data: Mapping[str, Any],
                  cluster: Cluster | None) -> WeightLimit | None:
    """The weights must fit in vLLM's share, which a cluster's ranks add up (each holds a part)."""
    if share is None:
        return None
    nodes = len(cluster.nodes) if cluster else 1
    where = f" on each of {nodes} Sparks" if cluster else ""
    of = "" if data.get("vllm_memory_gib") is not None else f" of {data.get('spark_memory_gib', 128)} GiB"
    return WeightLimit(int(share[0] * GIB * nodes), f"{share[1]}{of}{where}")


def _memory_warnings(recipe: Recipe, values: Mapping[str, Any], argv: list[str],
                     data: Mapping[str, Any], host_name: str, cluster: Cluster | None) -> list[str]:
    """Warn when weights plus one full-length sequence's KV cache exceed vLLM's memory share
    (for models in ``vllm_model_profiles``; others are estimated once their config is on the host)."""
    profile = (data.get("vllm_model_profiles") or {}).get(recipe.model or "")
    share = _share(recipe, values, data)
    if not profile or share is None or data.get("vllm_memory_gib") is not None:
        return []  # a reservation is checked by the budget (sparkdeploy.budget), as an error
    max_len = values.get("max_model_len")
    if not isinstance(max_len, int) or isinstance(max_len, bool):
        max_len = profile.get("max_context", 0)
    warning = fit_warning(f"host {host_name!r}", profile["weights_gib"], shape_from_profile(profile),
                          max_len, kv_dtype_bytes(flag_value(argv, "--kv-cache-dtype")), *share,
                          nodes=len(cluster.nodes) if cluster else 1)
    return [warning] if warning else []


def config_need(service: VllmService, listing: SnapshotListing) -> Need | None:
    """What a model without a profile entry needs, from its snapshot and config.json on the host."""
    recipe = service.recipe
    if recipe.model in (service.data.get("vllm_model_profiles") or {}) or listing.config is None:
        return None
    shape = shape_from_config(listing.config)
    max_len = service.values.get("max_model_len")
    if shape is None or not isinstance(max_len, int) or isinstance(max_len, bool):
        return None
    return need(listing_weight_bytes(listing) / GIB, shape, max_len, service.argv)


def config_fit_warning(host_name: str, service: VllmService, data: Mapping[str, Any],
                       listing: SnapshotListing) -> str | None:
    """The fit warning for a model without a profile entry, from its config.json on the host."""
    recipe = service.recipe
    if recipe.model in (data.get("vllm_model_profiles") or {}) or listing.config is None:
        return None
    shape = shape_from_config(listing.config)
    share = _share(recipe, service.values, data)
    max_len = service.values.get("max_model_len")
    if shape is None or share is None or not isinstance(max_len, int) or isinstance(max_len, bool):
        return None
    weights_gib = listing_weight_bytes(listing) / GIB
    return fit_warning(f"host {host_name!r}", weights_gib, shape, max_len,
                       kv_dtype_bytes(flag_value(service.argv, "--kv-cache-dtype")), *share,
                       nodes=len(service.cluster.nodes) if service.cluster else 1)


def _compose(recipe: Recipe, argv: list[str], local_url: str, data: Mapping[str, Any],
             cluster: Cluster | None, node: ClusterNode | None) -> dict[str, Any]:
    home = service_home(data)
    environment = dict(data.get("vllm_base_env") or {})
    if cluster is not None and node is not None:
        environment.update(rank_environment(cluster, node))
    if data.get("model_hub_offline", True):
        # The deploy brought the weights (tasks/weights.py): a restart never reaches the hub.
        environment["HF_HUB_OFFLINE"] = "1"
    volumes = {container: f"{home}/{host_path}"
               for host_path, container in (data.get("vllm_cache_mounts") or {}).items()}
    if data.get("model_store") == "nfs":
        store = data["model_store_container_dir"]
        volumes[store] = f"{data['model_store_nfs_dir']}:ro"
        environment["HF_HUB_CACHE"] = store
    service: dict[str, Any] = {
        "image": recipe.container,
        "container_name": data.get("vllm_container_name", "vllm_node"),
        "network_mode": "host",
        "ipc": "host",
        "entrypoint": [],
        "environment": environment,
        "ulimits": {"nofile": {"soft": data["vllm_nofile_limit"],
                               "hard": data["vllm_nofile_limit"]}},
        "deploy": {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]},
        ]}}},
        "restart": f"on-failure:{data['vllm_restart_max_attempts']}",
        "oom_score_adj": data["vllm_oom_score_adj"],
        "healthcheck": {
            "test": ["CMD", "curl", "-fsS", f"{local_url}/health"],
            "interval": "30s",
            "timeout": "10s",
            "retries": 3,
            "start_period": data["vllm_healthcheck_start_period"],
        },
        "labels": {"io.sparkdeploy.recipe": recipe.name},
    }
    if node is not None:
        # RDMA registers (pins) memory: NCCL fails with ibv_reg_mr ENOMEM under the default limit
        memlock = data["cluster_memlock_limit"]
        service["ulimits"]["memlock"] = {"soft": memlock, "hard": memlock}
        service["labels"]["io.sparkdeploy.rank"] = str(node.rank)
        if node.rank:
            # a headless rank has no HTTP listener (health is the head's)
            service["healthcheck"] = {"disable": True}
    if data.get("vllm_privileged"):
        service["privileged"] = True
    if data.get("vllm_api_key_enabled"):
        service["env_file"] = ["secrets.env"]  # VLLM_API_KEY, mode 0600, never in this file
    apply_docker_args(service, volumes, recipe, recipe_policy(data))
    environment.update(recipe.env)
    service["volumes"] = [_volume(source, target) for target, source in volumes.items()]
    script = _rank_script(argv, cluster, node)
    if recipe.mods or script:
        service["working_dir"] = "/workspace/vllm"
        service["command"] = ["bash", "-c", _mods_script(recipe, script or "exec " + shlex.join(argv))]
        checkout = upstream_checkout_dir(data)
        service["volumes"] += [f"{checkout}/{mod}:{_MODS_SOURCE_DIR}/{_mod_name(mod)}:ro"
                               for mod in recipe.mods]
    else:
        service["command"] = argv
    return {"name": project_name(data), "services": {"vllm": service}}


def _volume(source: str, target: str) -> str:
    path, _, mode = source.partition(":")
    return f"{path}:{target}:{mode}" if mode else f"{path}:{target}"


def _mod_name(mod: str) -> str:
    return mod.rstrip("/").rsplit("/", 1)[-1]


def _rank_script(argv: list[str], cluster: Cluster | None, node: ClusterNode | None) -> str | None:
    """With Ray the container runs Ray first (head: then serves; worker: only Ray)."""
    if cluster is None or node is None or cluster.executor != "ray":
        return None
    if node.rank:
        return "exec " + shlex.join(ray_worker_argv(cluster, node))
    return ray_head_script(argv, cluster, node)


def _mods_script(recipe: Recipe, run: str) -> str:
    """Apply mods once per container (they patch the container layer and are not idempotent),
    then ``run`` (the rank's command)."""
    if not recipe.mods:
        return run
    steps = [f"if [ ! -e {_MOD_SENTINEL} ]; then"]
    for mod in recipe.mods:
        source = shlex.quote(f"{_MODS_SOURCE_DIR}/{_mod_name(mod)}")
        target = shlex.quote(f"/workspace/mods/{_mod_name(mod)}")
        steps.append(
            f"  mkdir -p /workspace/mods && cp -r {source} {target}"
            f" && (cd {target} && WORKSPACE_DIR=/workspace/vllm bash ./run.sh)"
            " || exit 1"
        )
    steps.append(f"  touch {_MOD_SENTINEL}")
    steps.append("fi")
    steps.append(run)
    return "\n".join(steps)
