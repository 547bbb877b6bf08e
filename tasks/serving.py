"""Compose projects for vLLM and the proxy, rendered from the host's recipe and data.

Secret files are placed with mode 0600 and an operation name that never shows their content.
"""

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files

from sparkdeploy.plan import HostPlan


@deploy("Serving stack files")
def serving_files(plan: HostPlan) -> None:
    for rendered in plan.files:
        files.put(
            name=f"Place {rendered.path}" + (" (secret)" if rendered.secret else ""),
            src=StringIO(rendered.content),
            dest=rendered.path,
            user=rendered.user,
            group=rendered.group,
            mode=rendered.mode,
        )
