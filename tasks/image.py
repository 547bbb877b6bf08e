"""The vLLM image the host's recipe runs: built from upstream at a pinned commit, or as given.

Recipes with ``build_args`` (the mxfp4 image: no prebuilt image exists) are built from a checkout
of eugr/spark-vllm-docker at the pinned commit with its own ``build-and-copy.sh``, and only when
the image is missing or records another commit or other build arguments: a build takes 25-45
minutes. It runs detached from the SSH session, logging to a file on the host, bounded by a
timeout; the deploy shows its progress and, on failure, stops before any service is touched.
Recipes without ``build_args`` use their image as given, pulled only when it is missing.
Recipes with mods get the checkout too (the vLLM container mounts mods from it).
"""

from __future__ import annotations

import shlex

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files, python, server

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.image_build import (
    RUNNER_PATH,
    BuildSpec,
    UpstreamCheckout,
    build_reason,
    build_spec,
    upstream_checkout,
)
from sparkdeploy.packages import missing_packages
from sparkdeploy.plan import HostPlan
from sparkdeploy.serving_facts import GitCheckout, ImageBuildRecord, ImagePresent
from sparkdeploy.waits import Reporter, follow_build, on_host

_RUNNER_SOURCE = PROJECT_ROOT / "files" / "build-vllm-image"


@deploy("vLLM image")
def vllm_image(plan: HostPlan) -> list[OperationMeta]:
    """Make the recipe's image current; returns the operations after which vLLM must restart."""
    if plan.vllm is None:
        return []
    data = host.data.dict()
    recipe = plan.vllm.recipe
    missing = missing_packages(host.get_fact(DebPackages), data["upstream_build_packages"])
    if missing:
        apt.packages(
            name=f"Install {', '.join(missing)} for the upstream checkout, build and service checks",
            packages=missing,
            update=True,
        )
    changes = []
    if recipe.build_args or recipe.mods:
        checkout = _checkout(upstream_checkout(host.name, data))
        if checkout is not None and recipe.mods:
            changes.append(checkout)
    spec = build_spec(plan.vllm, data)
    if spec is None:
        return changes + _image_as_given(recipe.container)
    files.put(
        name="Install the image build runner",
        src=str(_RUNNER_SOURCE),
        dest=RUNNER_PATH,
        user="root",
        group="root",
        mode="0755",
    )
    files.directory(
        name="Keep a directory for image build logs",
        path=spec.log_dir,
        user="root",
        group="root",
        mode="0755",
    )
    reason = build_reason(host.get_fact(ImageBuildRecord, image=spec.image, _sudo=_sudo()), spec)
    if reason is None:
        return changes
    logger.info(f"{host.name}: {reason}; it will be built (25-45 min on a Spark), log {spec.log_file}")
    return [*changes, _build(spec, reason)]


def _checkout(checkout: UpstreamCheckout) -> OperationMeta | None:
    """Clone or move the upstream checkout to the pinned commit; nothing when it is there."""
    current = host.get_fact(GitCheckout, path=checkout.directory, _sudo=_sudo())
    if current == {"commit": checkout.commit, "origin": checkout.repo_url}:
        return None
    git = f"git -c safe.directory='*' -C {shlex.quote(checkout.directory)}"
    if current is None:
        commands = [f"git -c safe.directory='*' clone -q --no-checkout "
                    f"{shlex.quote(checkout.repo_url)} {shlex.quote(checkout.directory)}"]
    else:
        commands = [f"{git} remote set-url origin {shlex.quote(checkout.repo_url)}",
                    f"{git} fetch -q --tags origin"]
    commands += [
        # a commit no branch reaches any more is fetched by id
        f"{git} cat-file -e {checkout.commit}^{{commit}} 2>/dev/null"
        f" || {git} fetch -q origin {checkout.commit}",
        f"{git} checkout -q --detach {checkout.commit}",
        f"chown -R {shlex.quote(host.data.service_user)}: {shlex.quote(checkout.directory)}",
    ]
    # Emitted only when the GitCheckout fact above differs from the pinned commit: no _if needed.
    return server.shell(
        name=f"Check out {checkout.repo_url} at {checkout.commit[:12]} in {checkout.directory}",
        commands=commands,
    )


def _build(spec: BuildSpec, reason: str) -> OperationMeta:
    """Start the build detached, then follow it; the second operation fails when the build does.

    Called only when the image's recorded build differs from the wanted one, so no _if is needed.
    """
    server.shell(
        name=f"Start building {spec.image} in the background ({reason}; log: {spec.log_file})",
        commands=[spec.start_command()],
    )
    return python.call(
        name=f"Wait for the {spec.image} build, showing progress (log: {spec.log_file})",
        function=_follow,
        spec=spec,
        interval=float(host.data.deploy_poll_interval),
        sudo=_sudo(),
    )


def _follow(state, host, spec: BuildSpec, interval: float, sudo: bool) -> bool:
    report = Reporter(info=lambda message: host.log_styled(message, fg="cyan"),
                      error=lambda message: host.log_styled(message, fg="red", log_func=logger.error))
    return follow_build(on_host(host, sudo), spec, interval, report)


def _image_as_given(image: str) -> list[OperationMeta]:
    if host.get_fact(ImagePresent, image=image, _sudo=_sudo()):
        return []
    # Emitted only when the image is missing.
    return [server.shell(name=f"Pull the vLLM image {image}", commands=[f"docker pull {shlex.quote(image)}"])]


def _sudo() -> bool:
    """The deploy's own ``_sudo`` (facts read in deploy code do not inherit it)."""
    return bool((host.current_deploy_kwargs or {}).get("_sudo"))
