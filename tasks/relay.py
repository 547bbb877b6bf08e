"""The relay running beside the proxy: placed, started after the proxy, restarted only when its
files changed, and removed again (conversations kept) when ``relay_enabled`` is turned off."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import Directory
from pyinfra.operations import files

from sparkdeploy.plan import HostPlan
from sparkdeploy.relay import CONTAINER, REREAD_FILE
from sparkdeploy.vllm_service import local_url
from tasks.services import bring_up, take_down
from tasks.serving import place


@deploy("Relay")
def relay_service(plan: HostPlan) -> None:
    directory = host.data.relay_compose_dir
    if not plan.relay_files:
        _remove_relay(directory)
        return
    files.directory(
        name=f"Relay conversations directory {host.data.relay_data_dir}",
        path=host.data.relay_data_dir,
        user="root",
        group="root",
        mode="0700",
    )
    for subdirectory in ("sparkrelay", "models"):
        files.directory(
            name=f"Relay directory {directory}/{subdirectory}",
            path=f"{directory}/{subdirectory}",
            user="root",
            group="root",
            mode="0755",
        )
    placed = {rendered.path: place(rendered) for rendered in plan.relay_files}
    start_relay([operation for path, operation in placed.items() if not path.endswith(f"/{REREAD_FILE}")])


def start_relay(changes: list[OperationMeta]) -> None:
    """Start the relay when ``changes`` changed something or its container is not running."""
    bring_up(
        what="the relay",
        directory=host.data.relay_compose_dir,
        containers=[CONTAINER],
        changes=changes,
        url=f"{local_url(host.data.relay_bind_address, host.data.relay_port)}/health",
        timeout=host.data.relay_health_timeout,
    )


def _remove_relay(directory: str) -> None:
    """A relay turned off: its container stopped and its project removed; conversations stay."""
    sudo = bool((host.current_deploy_kwargs or {}).get("_sudo"))
    if not host.get_fact(Directory, path=directory, _sudo=sudo):
        return
    # only when the Directory fact found the project on the host
    take_down("the relay, turned off", directory)
