"""Stop, start or show the serving stack on demand (``stack.py``), outside a full deploy.

Stop takes the relay and the proxy down before vLLM (clients get a refused connection, not a half answer);
start is the deploy's own bring-up with nothing changed, so it starts exactly the containers
that are not running, drops the page cache before vLLM, and waits for both to answer.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import python, server

from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import HostPlan
from tasks.relay import start_relay
from tasks.services import serving_services
from tasks.serving import ServingFiles

ACTIONS = ("status", "stop", "start")


@deploy("Serving stack control")
def serving_stack(plan: HostPlan, action: str) -> None:
    if action not in ACTIONS:
        raise ConfigError(f"host {host.name!r} data", "stack_action", f"unknown action {action!r}",
                          allowed=", ".join(ACTIONS))
    projects = _projects(plan)
    if action == "start":
        serving_services(plan, ServingFiles(), [])
        if plan.relay_files:
            start_relay([])
    elif action == "stop":
        for what, directory in reversed(projects):
            # An explicit operator action: it is meant to run every time it is asked for.
            server.shell(name=f"Stop {what} (docker compose stop in {directory})",
                         commands=[f"docker compose --project-directory {shlex.quote(directory)} stop"])
    else:
        python.call(name="Show the serving stack's containers", function=_status, projects=projects,
                    sudo=bool((host.current_deploy_kwargs or {}).get("_sudo")))


def _projects(plan: HostPlan) -> list[tuple[str, str]]:
    """(what, compose directory) in start order."""
    projects = []
    projects += [(f"vLLM {service.model_name}".rstrip(), service.compose_dir) for service in plan.models]
    if plan.proxy_files:
        projects.append(("the LiteLLM proxy", host.data.proxy_compose_dir))
    if plan.relay_files:
        projects.append(("the relay", host.data.relay_compose_dir))
    return projects


def _status(state, host, projects: list[tuple[str, str]], sudo: bool) -> bool:
    for what, directory in projects:
        command = (f"docker compose --project-directory {shlex.quote(directory)} ps --all "
                   "--format 'table {{.Name}}\t{{.State}}\t{{.Status}}'")
        ok, output = host.run_shell_command(command, _sudo=sudo)
        host.log_styled(f"{what} ({directory}):", fg="cyan")
        for line in output.stdout_lines or ["(no containers)"]:
            host.log_styled(f"  {line}")
        if not ok:
            return False
    return True
