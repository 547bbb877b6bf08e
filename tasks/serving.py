"""Compose projects for vLLM and the proxy, rendered from the host's recipe and data.

Secret files are placed 0600 from their first byte, and neither an operation nor ``--diff``
ever shows their content (:func:`sparkdeploy.operations.secret_file`).
The operations are returned per project, so a project restarts only when its own files changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import StringIO

from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files

from sparkdeploy.operations import secret_file
from sparkdeploy.plan import HostPlan, RenderedFile


@dataclass(frozen=True)
class ServingFiles:
    """The file operations of each compose project (each model's by its name)."""

    models: dict[str, list[OperationMeta]] = field(default_factory=dict)
    proxy: list[OperationMeta] = field(default_factory=list)

    @property
    def vllm(self) -> list[OperationMeta]:
        return [operation for operations in self.models.values() for operation in operations]


@deploy("Serving stack files")
def serving_files(plan: HostPlan) -> ServingFiles:
    return ServingFiles(models={name: [place(rendered) for rendered in rendered_files]
                                for name, rendered_files in plan.model_files.items()},
                        proxy=[place(rendered) for rendered in plan.proxy_files])


def place(rendered: RenderedFile) -> OperationMeta:
    """Place (or remove) one rendered file; secrets through :func:`secret_file`."""
    if not rendered.present:
        return files.file(
            name=f"Remove {rendered.path} (no longer used)",
            path=rendered.path,
            present=False,
            user=rendered.user,
            group=rendered.group,
            mode=rendered.mode,
        )
    if rendered.secret:
        return secret_file(
            name=f"Place {rendered.path} (secret)",
            content=rendered.content,
            path=rendered.path,
            user=rendered.user,
            group=rendered.group,
            mode=rendered.mode,
        )
    return files.put(
        name=f"Place {rendered.path}",
        src=StringIO(rendered.content),
        dest=rendered.path,
        user=rendered.user,
        group=rendered.group,
        mode=rendered.mode,
    )
