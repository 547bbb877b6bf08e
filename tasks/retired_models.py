"""Models a host no longer serves, stopped and their compose projects removed, before any
engine starts: a model taken out of ``models``, or the member an exclusive group switched away
from (its memory is free before the new one profiles). Weights stay for a switch back.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from sparkdeploy.plan import HostPlan
from sparkdeploy.serving_facts import ModelProjects
from tasks.services import take_down


@deploy("Models no longer served")
def retired_models(plan: HostPlan) -> None:
    served = {service.compose_dir for service in plan.models}
    sudo = bool((host.current_deploy_kwargs or {}).get("_sudo"))
    for directory in host.get_fact(ModelProjects, base=host.data.vllm_compose_dir, _sudo=sudo):
        if directory in served:
            continue
        # only for a project the ModelProjects fact found on the host
        take_down("the model no longer served", directory)
