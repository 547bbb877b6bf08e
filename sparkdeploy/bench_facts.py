"""What a benchmark record says it measured, read from the host and the server themselves.

Over SSH (the connection ``verify`` tunnels through): the image the vLLM container runs, with the
digest sparkdeploy labels it with (:class:`~sparkdeploy.serving_facts.ImageMade`), and the served
model's ``tokenizer.json`` from the host's weights, so llama-benchy cuts prompts of the right
size without reaching the Hugging Face hub. Over HTTP: the server's ``system_fingerprint``.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from sparkdeploy.image_plan import ImageRecord
from sparkdeploy.serving_facts import ImageMade
from sparkdeploy.vllm_service import VllmService
from sparkdeploy.weights import is_commit, weights_plan

# Run a shell command on the host: (exit status, output).
HostRun = Callable[[str], tuple[int, str]]


class FactMissing(Exception):
    """A fact could not be read; the message says why."""


def running_image(run: HostRun, container: str) -> ImageRecord:
    """How the image the container runs was made (its label, digest and ID)."""
    inspect = f"docker container inspect --format '{{{{.Image}}}}' {shlex.quote(container)}"
    status, output = run(_sudo(inspect))
    if status != 0 or not output.strip():
        raise FactMissing(f"no container {container} on the host: {output.strip()[:120]}")
    fact = ImageMade()
    status, output = run(_sudo(fact.command(output.strip().splitlines()[-1])))
    if status != 0:
        raise FactMissing(f"cannot inspect the image of {container}: {output.strip()[:120]}")
    return fact.process(output.splitlines())


def tokenizer_path(service: VllmService, data: Mapping[str, Any]) -> str:
    """Where the served model's ``tokenizer.json`` is on the host: the snapshot of the recipe's
    tokenizer repository (else the model's) in the host's hub cache, at the pinned revision."""
    repo = next((repo for repo in service.repos if repo.role == "tokenizer"), service.repos[0])
    plan = weights_plan(service.host_name, data, repo, service.recipe.source)
    revision = repo.revision or "main"
    ref = shlex.quote(posixpath.join(plan.repo_dir, "refs", revision))
    snapshot = revision if is_commit(revision) else f"$(cat {ref})"
    return f"{shlex.quote(posixpath.join(plan.repo_dir, 'snapshots'))}/{snapshot}/tokenizer.json"


def fetch_tokenizer(run: HostRun, service: VllmService, data: Mapping[str, Any], target: Path) -> Path:
    """Copy the served model's ``tokenizer.json`` from the host into ``target``."""
    status, output = run(_sudo(f"cat {tokenizer_path(service, data)}"))
    if status != 0 or not output.lstrip().startswith("{"):
        raise FactMissing(f"no tokenizer.json of {service.repos[0].repo_id} in the host's weights: "
                          f"{output.strip()[:120]}")
    target.write_text(output)
    return target


def system_fingerprint(client: httpx.Client, model: str) -> str | None:
    """The server's build, as vLLM reports it on every completion (one token is enough)."""
    response = client.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1})
    if response.status_code >= 400:
        raise FactMissing(f"HTTP {response.status_code} from the server")
    return response.json().get("system_fingerprint") or None


def _sudo(command: str) -> str:
    """As root, as the deploy reads these facts (the hub cache belongs to the service user)."""
    return f"sudo -n sh -c {shlex.quote(command)}"
