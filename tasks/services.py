"""vLLM and the proxy running: each compose project brought up only when it has to be.

A project is (re)started when its files or its image changed in this run, or when a container of
it is not running at prepare time (a stopped stack comes back); a converged host runs nothing.
On unified memory vLLM sizes its KV cache from free memory, which page cache eats, so the cache
is dropped right before vLLM (re)starts. The deploy then waits for vLLM's /health and the proxy's
liveliness and fails with the container's last log lines when they do not come up in time.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import docker, files, python, server
from pyinfra.operations.util import any_changed

from sparkdeploy.page_cache import DROP_COMMAND
from sparkdeploy.plan import HostPlan
from sparkdeploy.proxy import proxy_compose
from sparkdeploy.serving_facts import ContainerStates, ImageMade
from sparkdeploy.vllm_service import local_url
from sparkdeploy.waits import Reporter, on_host, wait_until_up
from tasks.serving import ServingFiles


@deploy("Serving stack")
def serving_services(plan: HostPlan, placed: ServingFiles,
                     image_changes: dict[str, list[OperationMeta]]) -> None:
    """The models one at a time, in data order (the next starts once the previous answers:
    engines profiling at once on unified memory is where boxes die), then the proxy."""
    for service in plan.models:
        if service.cluster is not None:
            continue  # a cluster's ranks: tasks/ranks.py
        vllm = service.compose["services"]["vllm"]
        image = host.get_fact(ImageMade, image=vllm["image"], _sudo=_sudo())
        bring_up(
            what=f"vLLM {service.model_name}".rstrip(),
            directory=service.compose_dir,
            containers=[service.container_name],
            changes=[*placed.models.get(service.model_name, []), *image_changes.get(service.model_name, [])],
            url=f"{service.local_url}/health",
            timeout=host.data.vllm_health_timeout,
            before_start=drop_page_cache,
            image_id=image.image_id,
        )
    if plan.proxy_files:
        services = proxy_compose(host.data.dict())["services"]
        bring_up(
            what="the LiteLLM proxy",
            directory=host.data.proxy_compose_dir,
            containers=[service["container_name"] for service in services.values()],
            changes=placed.proxy,
            url=f"{local_url(host.data.proxy_bind_address, host.data.proxy_port)}/health/liveliness",
            timeout=host.data.proxy_health_timeout,
        )


def bring_up(what: str, directory: str, containers: list[str], changes: list[OperationMeta],
              url: str, timeout: int, before_start: Callable[[dict[str, Any]], None] | None = None,
              image_id: str | None = None) -> None:
    """Start the project when its files or image changed in this run, or unconditionally when a
    container is not running or runs another image than its tag now names (``image_id``)."""
    states = host.get_fact(ContainerStates, names=containers, _sudo=_sudo())
    stopped = [name for name in containers if (states.get(name) or {}).get("status") != "running"]
    outdated = [name for name in containers if name not in stopped and image_id
                and states[name].get("image") != image_id]
    if not changes and not stopped and not outdated:
        return
    if stopped or outdated:
        for name in stopped:
            logger.info(f"{host.name}: {name} not running; {what} will be started")
        for name in outdated:
            logger.info(f"{host.name}: {name} runs {str(states[name].get('image'))[:19]}, not its "
                        f"image {image_id[:19]}; {what} will be restarted")
        condition: dict[str, Any] = {}
    else:
        condition = {"_if": any_changed(*changes)}
    if before_start is not None:
        before_start(condition)
    docker.compose(
        name=f"Start or update {what} (docker compose up -d in {directory})",
        project_directory=directory,
        **condition,
    )
    wait_until_answers(what, url, containers[0], timeout, condition)


def take_down(what: str, directory: str) -> None:
    """Stop a compose project no longer wanted and remove its directory (call it only for a
    project a fact found on the host: nothing else gates these operations)."""
    server.shell(
        name=f"Stop {what} (docker compose down in {directory})",
        commands=[f"docker compose --project-directory {shlex.quote(directory)} down"],
    )
    files.directory(
        name=f"Remove its compose project {directory}",
        path=directory,
        present=False,
        user="root",
        group="root",
        mode="0755",
    )


def wait_until_answers(what: str, url: str, container: str, timeout: int,
                       condition: dict[str, Any]) -> None:
    """Wait for ``url`` after a start, failing with the container's last log lines."""
    python.call(
        name=f"Wait until {what} answers {url} (at most {timeout} s)",
        function=_wait,
        what=what,
        url=url,
        container=container,
        timeout=float(timeout),
        interval=float(host.data.deploy_poll_interval),
        log_lines=int(host.data.service_failure_log_lines),
        sudo=_sudo(),
        **condition,
    )


def drop_page_cache(condition: dict[str, Any]) -> None:
    """Drop the page cache right before vLLM starts, under ``condition`` (``_if`` or none)."""
    if not host.data.host_can_write_sysctl:
        python.call(
            name="Skip dropping the page cache before vLLM starts (this host cannot write sysctls)",
            function=_log_skip,
            **condition,
        )
        return
    server.shell(
        name="Drop the page cache right before vLLM starts (it sizes its memory from what is free)",
        commands=[DROP_COMMAND],
        **condition,
    )


def _log_skip(state, host) -> bool:
    host.log_styled("page cache not dropped: host_can_write_sysctl is false", fg="yellow")
    return True


def _wait(state, host, what: str, url: str, container: str, timeout: float, interval: float,
          log_lines: int, sudo: bool) -> bool:
    report = Reporter(info=lambda message: host.log_styled(message, fg="cyan"),
                      error=lambda message: host.log_styled(message, fg="red", log_func=logger.error))
    return wait_until_up(on_host(host, sudo), what, url, container, timeout, interval, log_lines, report)


def _sudo() -> bool:
    """The deploy's own ``_sudo`` (facts read in deploy code do not inherit it)."""
    return bool((host.current_deploy_kwargs or {}).get("_sudo"))
