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

from sparkdeploy.image_plan import (
    DIGEST_LABEL,
    IMAGE_LABEL,
    LEGACY_BUILD_LABEL,
    ImageRecord,
    parse_image_record,
)

# Where upstream's build-and-copy.sh puts what it built from, inside the image.
METADATA_PATH = "/workspace/build-metadata.yaml"


class ImageMade(FactBase):
    """How a local image was made, as recorded on it: sparkdeploy's label, else upstream's
    ``build-metadata.yaml`` (read by running the image with ``cat``: no network, removed after,
    and only for an unlabelled image, i.e. one made outside sparkdeploy). Also its image ID."""

    def command(self, image: str) -> str:
        image_q = shlex.quote(image)
        lines = ["id {{.Id}}"] + [f"{kind} {{{{index .Config.Labels {json.dumps(label)}}}}}"
                                  for kind, label in (("label", IMAGE_LABEL), ("digest", DIGEST_LABEL),
                                                      ("legacy", LEGACY_BUILD_LABEL))]
        template = shlex.quote("\n".join(lines))
        return (
            "command -v docker >/dev/null 2>&1 || { echo missing; exit 0; }; "
            f"if ! docker image inspect {image_q} >/dev/null 2>&1; then echo missing; exit 0; fi; "
            f"out=$(docker image inspect --format {template} {image_q}); printf '%s\\n' \"$out\"; "
            'case "$out" in *"label {"*|*"legacy {"*) exit 0 ;; esac; '
            f"docker run --rm --network none --entrypoint cat {image_q} "
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
    """A directory's owner and, when it is a git checkout, its HEAD commit and origin URL
    (None when the directory does not exist). git runs without hooks."""

    def command(self, path: str) -> str:
        directory = shlex.quote(path)
        git = f"git -c core.hooksPath=/dev/null -C {directory}"
        return (f"[ -e {directory} ] || exit 0; echo \"owner $(stat -c %U {directory})\"; "
                f"command -v git >/dev/null 2>&1 && {git} rev-parse --is-inside-work-tree "
                f">/dev/null 2>&1 && echo \"commit $({git} rev-parse HEAD)\" && "
                f"echo \"origin $({git} remote get-url origin)\"; true")

    def process(self, output: list[str]) -> dict[str, str | None] | None:
        values: dict[str, str | None] = {"owner": None, "commit": None, "origin": None}
        for line in output:
            kind, _, value = line.strip().partition(" ")
            if kind in values:
                values[kind] = value or None
        return values if values["owner"] else None

    @staticmethod
    def default() -> None:
        return None


class ContainerStates(FactBase):
    """State, image ID and health of named containers: name -> {"status", "image", "health"};
    absent names are missing."""

    def command(self, names: list[str]) -> str:
        quoted = " ".join(shlex.quote(name) for name in names)
        template = shlex.quote("{{json .Name}} {{json .State.Status}} {{json .Image}} "
                               "{{if .State.Health}}{{json .State.Health.Status}}{{else}}null{{end}}")
        return (f"command -v docker >/dev/null 2>&1 || exit 0; "
                f"for name in {quoted}; do docker container inspect --format {template} \"$name\" "
                "2>/dev/null; done; true")

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        states = {}
        for line in output:
            try:
                name, status, image, health = (json.loads(part) for part in line.split(" ", 3))
            except ValueError:
                continue
            states[name.lstrip("/")] = {"status": status, "image": image, "health": health}
        return states

    @staticmethod
    def default() -> dict[str, dict[str, Any]]:
        return {}


class ModelProjects(FactBase):
    """The compose directories of models served beside the recipe (``<base>-<name>`` holding a
    compose.yaml), as they are on the host: what a data change may have left behind."""

    def command(self, base: str) -> str:
        base = base.rstrip("/")
        return (f"for d in {shlex.quote(base)}-*; do "
                '[ -f "$d/compose.yaml" ] && printf "%s\\n" "$d"; done; true')

    def process(self, output: list[str]) -> list[str]:
        return [line for line in output if line.strip()]

    @staticmethod
    def default() -> list[str]:
        return []
