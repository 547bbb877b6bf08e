"""What each rank of a cluster runs: upstream's command plus vLLM's multi-node flags, and the
per-node environment upstream's ``launch-cluster.sh`` gives (358bf26, read, not copied).

No-Ray (upstream's default): ``--distributed-executor-backend`` is dropped and every node runs
``vllm serve`` with ``--nnodes N --node-rank R --master-addr <head> --master-port P``; workers add
``--headless`` (no HTTP). Ray: the head starts a Ray head, waits for every node to join, then
serves with ``--distributed-executor-backend ray``; workers run a Ray worker.
"""

from __future__ import annotations

import re
import shlex

from sparkdeploy.cluster import Cluster, ClusterNode
from sparkdeploy.errors import ConfigError
from sparkdeploy.model_repos import flag_value

_PARALLEL_FLAGS = (("-tp", "--tensor-parallel-size"), ("-pp", "--pipeline-parallel-size"),
                   ("-dp", "--data-parallel-size"))
_EXECUTOR_FLAG = "--distributed-executor-backend"
# Ray's own numbers in upstream's launcher: the object store and the CPUs Ray may schedule.
_RAY_OBJECT_STORE_BYTES = 1073741824
_RAY_WAIT_SECONDS = 600


def parallel_size(argv: list[str]) -> int:
    """GPUs the command asks for (one per Spark): tensor x pipeline x data parallel."""
    size = 1
    for short, long in _PARALLEL_FLAGS:
        value = flag_value(argv, long) or flag_value(argv, short)
        if value is not None:
            try:
                size *= int(value)
            except ValueError:
                return 0
    return size


def check_parallel_size(argv: list[str], cluster: Cluster, recipe_source: str) -> None:
    """A recipe needing more (or fewer) GPUs than the cluster has Sparks cannot start."""
    needed = parallel_size(argv)
    if needed != len(cluster.nodes):
        raise ConfigError(recipe_source, "command", f"it runs on {needed} GPU(s) (tensor x pipeline "
                          f"x data parallel) but cluster {cluster.name!r} has {len(cluster.nodes)} "
                          "Sparks with one GPU each", allowed=f"a recipe for {len(cluster.nodes)} "
                          "nodes, or set vllm_params.tensor_parallel to match")


def rank_argv(argv: list[str], cluster: Cluster, node: ClusterNode) -> list[str]:
    """The ``vllm serve`` argv of ``node``'s rank (no-Ray) or of the Ray head's serve command."""
    if cluster.executor == "ray":
        return [*_without_executor(argv), _EXECUTOR_FLAG, "ray"]
    flags = ["--nnodes", str(len(cluster.nodes)), "--node-rank", str(node.rank),
             "--master-addr", cluster.head.ip, "--master-port", str(cluster.master_port)]
    return [*_without_executor(argv), *flags, *(["--headless"] if node.rank else [])]


def ray_head_script(serve_argv: list[str], cluster: Cluster, node: ClusterNode) -> str:
    """Start the Ray head, wait until every node has joined, then serve (bash)."""
    nodes = len(cluster.nodes)
    return "\n".join([
        f"ray start --head --port {cluster.master_port} --node-ip-address {shlex.quote(node.ip)} "
        f"--object-store-memory {_RAY_OBJECT_STORE_BYTES} --num-cpus 2 --include-dashboard=false "
        "--disable-usage-stats || exit 1",
        f"for _ in $(seq {_RAY_WAIT_SECONDS // 2}); do",
        "  joined=$(ray status 2>/dev/null | grep -c 'node_')",
        f"  [ \"$joined\" -ge {nodes} ] && break",
        "  sleep 2",
        "done",
        f"[ \"$joined\" -ge {nodes} ] || "
        f"{{ echo \"only $joined of {nodes} Ray nodes joined\" >&2; exit 1; }}",
        "exec " + shlex.join(serve_argv),
    ])


def ray_worker_argv(cluster: Cluster, node: ClusterNode) -> list[str]:
    """A Ray worker that joins the head and stays in the foreground (its container's process)."""
    return ["ray", "start", "--block", f"--address={cluster.head.ip}:{cluster.master_port}",
            "--node-ip-address", node.ip, "--object-store-memory", str(_RAY_OBJECT_STORE_BYTES),
            "--num-cpus", "2", "--disable-usage-stats"]


def rank_environment(cluster: Cluster, node: ClusterNode) -> dict[str, str]:
    """Upstream's per-node environment: this node's link address and interface for every library
    that picks a network (vLLM, NCCL, Gloo, UCX, Open MPI), both RoCE twins for NCCL's RDMA."""
    interface = node.interface
    environment = {
        "VLLM_HOST_IP": node.ip,
        "MASTER_ADDR": cluster.head.ip,
        "MN_IF_NAME": interface,
        "UCX_NET_DEVICES": interface,
        "NCCL_SOCKET_IFNAME": interface,
        "GLOO_SOCKET_IFNAME": interface,
        "TP_SOCKET_IFNAME": interface,
        "OMPI_MCA_btl_tcp_if_include": interface,
        "NCCL_IB_DISABLE": "0",
    }
    if cluster.rdma_devices:
        environment["NCCL_IB_HCA"] = ",".join(cluster.rdma_devices)
    if cluster.executor == "ray":
        environment.update({
            "RAY_NODE_IP_ADDRESS": node.ip,
            "RAY_OVERRIDE_NODE_IP_ADDRESS": node.ip,
            "RAY_memory_monitor_refresh_ms": "0",
            "RAY_num_prestart_python_workers": "0",
            "RAY_object_store_memory": str(_RAY_OBJECT_STORE_BYTES),
        })
    return environment


def _without_executor(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == _EXECUTOR_FLAG:
            skip = True
        elif not re.match(re.escape(_EXECUTOR_FLAG) + "=", arg):
            kept.append(arg)
    return kept
