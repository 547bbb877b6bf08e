"""pyinfra facts about the serving stack: the vLLM image, the upstream checkout, containers.

They are read at prepare time, so the deploy emits a build, a clone or a start only when the
host needs one, and a converged host yields no operation for them at all. Each fact answers
"nothing there" (not an error) when Docker or git is missing, as on a host not yet provisioned.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase

from sparkdeploy.image_build import BUILD_LABEL, METADATA_PATH, ImageRecord, parse_image_record


class ImageBuildRecord(FactBase):
    """What an image records about its build: sparkdeploy's label, else upstream's metadata file.

    The metadata file is read by running the image with ``cat`` (no network, removed after), and
    only for an image without the label, i.e. one built outside sparkdeploy.
    """

    def command(self, image: str) -> str:
        image_q = shlex.quote(image)
        label_format = shlex.quote(f'{{{{index .Config.Labels "{BUILD_LABEL}"}}}}')
        return (
            "command -v docker >/dev/null 2>&1 || { echo missing; exit 0; }; "
            f"if ! docker image inspect {image_q} >/dev/null 2>&1; then echo missing; exit 0; fi; "
            f"label=$(docker image inspect --format {label_format} {image_q}); "
            'case "$label" in "{"*) echo "label $label"; exit 0 ;; esac; '
            f"echo present; docker run --rm --network none --entrypoint cat {image_q} "
            f"{METADATA_PATH} 2>/dev/null | sed 's/^/metadata /' || true"
        )

    def process(self, output: list[str]) -> ImageRecord:
        return parse_image_record(output)

    @staticmethod
    def default() -> ImageRecord:
        return ImageRecord(present=False)


class ImagePresent(FactBase):
    """Whether an image tag exists locally (for recipes that use an image as given)."""

    def command(self, image: str) -> str:
        return (f"command -v docker >/dev/null 2>&1 && docker image inspect {shlex.quote(image)} "
                ">/dev/null 2>&1 && echo yes || echo no")

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[0].strip() == "yes"

    @staticmethod
    def default() -> bool:
        return False


class GitCheckout(FactBase):
    """A checkout's HEAD commit and origin URL, or None when the directory is not a checkout."""

    def command(self, path: str) -> str:
        git = f"git -c safe.directory='*' -C {shlex.quote(path)}"
        return (f"command -v git >/dev/null 2>&1 && {git} rev-parse --is-inside-work-tree "
                f">/dev/null 2>&1 && {git} rev-parse HEAD && {git} remote get-url origin || true")

    def process(self, output: list[str]) -> dict[str, str] | None:
        if len(output) < 2:
            return None
        return {"commit": output[0].strip(), "origin": output[1].strip()}

    @staticmethod
    def default() -> None:
        return None


class ContainerStates(FactBase):
    """State and health of named containers: name -> {"status", "health"}; absent names are missing."""

    def command(self, names: list[str]) -> str:
        quoted = " ".join(shlex.quote(name) for name in names)
        template = shlex.quote("{{json .Name}} {{json .State.Status}} "
                               "{{if .State.Health}}{{json .State.Health.Status}}{{else}}null{{end}}")
        return (f"command -v docker >/dev/null 2>&1 || exit 0; "
                f"for name in {quoted}; do docker container inspect --format {template} \"$name\" "
                "2>/dev/null; done; true")

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        states = {}
        for line in output:
            try:
                name, status, health = (json.loads(part) for part in line.split(" ", 2))
            except ValueError:
                continue
            states[name.lstrip("/")] = {"status": status, "health": health}
        return states

    @staticmethod
    def default() -> dict[str, dict[str, Any]]:
        return {}
