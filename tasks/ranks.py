"""A cluster's vLLM ranks brought up together: workers first, then the head, then the check.

NCCL groups do not rejoin: a change on any node (its compose file, its image, the head's image
copied over) restarts every rank of the cluster, and a rank that is not running, or runs an old
image, on any node restarts them all as well. Workers start before the head, as upstream's
launcher does; the head's ``/health`` answers only once every rank has joined, and the workers
are then checked still running. A converged cluster restarts nothing.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host, inventory, logger
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import docker, python

from sparkdeploy.cluster import ClusterNode
from sparkdeploy.plan import HostPlan
from sparkdeploy.serving_facts import ContainerStates, ImageMade
from sparkdeploy.vllm_service import VllmService
from sparkdeploy.waits import Reporter, on_host, rank_stays_up
from tasks.cluster_order import every_node_reaches
from tasks.services import drop_page_cache, wait_until_answers
from tasks.serving import ServingFiles

# Every node's change operations per cluster: whichever changes, all ranks restart.
_cluster_changes: dict[tuple[int, str], list[OperationMeta]] = {}
# How long a worker must keep running after the head came up to count as joined.
_STAYS_UP_SECONDS = 10.0


@deploy("vLLM cluster ranks")
def cluster_ranks(plan: HostPlan, placed: ServingFiles,
                  image_changes: dict[str, list[OperationMeta]]) -> None:
    service = plan.vllm
    if service is None or service.cluster is None or service.node is None:
        return
    cluster, node = service.cluster, service.node
    changes = _cluster_changes.setdefault((id(host.state), cluster.name), [])
    changes.extend([*placed.vllm, *image_changes.get(service.model_name, [])])
    container = service.compose["services"]["vllm"]["container_name"]
    down = [peer.host_name for peer in cluster.nodes if not _rank_current(peer, service, container)]
    if down:
        logger.info(f"{host.print_prefix}rank(s) not running their current image on "
                    f"{', '.join(down)}: every rank of cluster {cluster.name} restarts")
        condition: dict[str, Any] = {}
    else:
        condition = {"_if": lambda: any(op.did_change() for op in changes)}
    directory = host.data.vllm_compose_dir
    if node.rank:
        drop_page_cache(condition)
        docker.compose(
            name=f"Start vLLM worker rank {node.rank} (every rank restarts together; "
                 f"docker compose up --force-recreate in {directory})",
            project_directory=directory,
            force_recreate=True,
            **condition,
        )
    every_node_reaches("starting the worker ranks")
    if not node.rank:
        drop_page_cache(condition)
        docker.compose(
            name=f"Start the vLLM head rank after its workers (docker compose up --force-recreate "
                 f"in {directory})",
            project_directory=directory,
            force_recreate=True,
            **condition,
        )
        wait_until_answers(f"the head of cluster {cluster.name} (every rank joined)",
                           f"{service.local_url}/health", container, host.data.vllm_health_timeout,
                           condition)
    every_node_reaches("starting the head rank")
    if node.rank:
        python.call(
            name=f"Check that worker rank {node.rank} joined and keeps running",
            function=_stays_up,
            container=container,
            **condition,
        )

def _rank_current(peer: ClusterNode, service: VllmService, container: str) -> bool:
    """Whether ``peer``'s rank runs, on the image its tag names (facts read on that node)."""
    node_host = inventory.get_host(peer.host_name)
    states = node_host.get_fact(ContainerStates, names=[container], _sudo=True)
    image = node_host.get_fact(ImageMade, image=service.image.image, _sudo=True)
    state = states.get(container) or {}
    current = image.image_id is None or state.get("image") == image.image_id
    return state.get("status") == "running" and current


def _stays_up(state, host, container: str) -> bool:
    report = Reporter(info=lambda message: host.log_styled(message, fg="cyan"),
                      error=lambda message: host.log_styled(message, fg="red", log_func=logger.error))
    return rank_stays_up(on_host(host, True), container, _STAYS_UP_SECONDS,
                         int(host.data.service_failure_log_lines), report)
