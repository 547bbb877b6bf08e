"""The vLLM image each model of the host runs, made the way upstream makes it, and only when needed.

Upstream's local tags come from its ``build-and-copy.sh`` at the pinned commit: a prebuilt image
pulled and tagged (``vllm-node``, ``vllm-node-b12x``) or a local build (``vllm-node-mxfp4``, a
25-45 minute compile); registry images are pulled; a digest in ``vllm_image_pins`` is pulled
exactly. The image records how it was made (:mod:`sparkdeploy.image_plan`), read here as a fact,
so a converged host pulls and builds nothing, and a changed pin, commit or build flag is one
pull or build. The work runs detached with progress and a log; on failure the deploy stops
before any service is touched. The upstream checkout is root's (root runs its script), outside
the service user's home, and its git hooks are off.
"""

from __future__ import annotations

import shlex

from pyinfra import host, inventory, logger
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files, python, server

from sparkdeploy.cluster import Cluster
from sparkdeploy.cluster_trust import copy_script
from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.errors import ConfigError
from sparkdeploy.image_build import RUNNER_PATH, ImageJob, image_job
from sparkdeploy.image_plan import UpstreamCheckout, image_reason, upstream_checkout
from sparkdeploy.packages import missing_packages
from sparkdeploy.plan import HostPlan
from sparkdeploy.serving_facts import GitCheckout, ImageMade
from sparkdeploy.vllm_service import VllmService
from sparkdeploy.waits import Reporter, follow_image_job, on_host
from tasks.cluster_order import every_node_reaches

_RUNNER_SOURCE = PROJECT_ROOT / "files" / "make-vllm-image"
# git as root in a checkout: no hooks, whatever the checkout's config says.
_GIT = "git -c core.hooksPath=/dev/null"


@deploy("vLLM image")
def vllm_image(plan: HostPlan) -> dict[str, list[OperationMeta]]:
    """Make each model's image current (an image several models share, once); returns, by model
    name, the operations after which that model must restart."""
    if not plan.models:
        return {}
    changes = _make_or_receive(plan)
    if plan.models[0].cluster is not None:
        every_node_reaches("the head's image, copied to every worker")
    return changes


def _make_or_receive(plan: HostPlan) -> dict[str, list[OperationMeta]]:
    """The head (or a single Spark) makes the images; a worker only checks its against the head's."""
    data = host.data.dict()
    missing = missing_packages(host.get_fact(DebPackages), data["upstream_build_packages"])
    if missing:
        apt.packages(
            name=f"Install {', '.join(missing)} for the upstream checkout, build and service checks",
            packages=missing,
            update=True,
        )
    first = plan.models[0]
    worker = first.node is not None and first.node.rank > 0
    checkout = None
    if any((service.image.runs_upstream_script and not worker) or service.recipe.mods
           for service in plan.models):
        wanted = next((service.image.checkout for service in plan.models if service.image.checkout), None)
        checkout = _checkout(wanted or upstream_checkout(host.name, data))
    # a recipe's mods come from the checkout: a new commit restarts the models that apply them
    changes = {service.model_name: [checkout] if checkout is not None and service.recipe.mods else []
               for service in plan.models}
    if worker:
        # the head makes the image once and copies it here over the link
        _compare_with_head(first.cluster, first.image.image)
        return changes
    files.put(
        name="Install the image runner (pull, or upstream's build-and-copy.sh, then record)",
        src=str(_RUNNER_SOURCE),
        dest=RUNNER_PATH,
        user="root",
        group="root",
        mode="0755",
    )
    made: dict[str, list[OperationMeta]] = {}
    for service in plan.models:
        if service.image.image not in made:
            made[service.image.image] = _make_current(service, data, first_job=not made)
        changes[service.model_name] += made[service.image.image]
    return changes


def _make_current(service: VllmService, data: dict, first_job: bool) -> list[OperationMeta]:
    """Pull or build one image when its record differs from its plan (a fact); a cluster head
    then copies it to the workers whose image ID differs."""
    image = service.image
    job = image_job(image, host.name, data)
    if first_job:
        files.directory(
            name="Keep a directory for image logs",
            path=job.log_dir,
            user="root",
            group="root",
            mode="0755",
        )
    changes = []
    reason = image_reason(host.get_fact(ImageMade, image=image.image, _sudo=_sudo()), image)
    if reason is not None:
        logger.info(f"{host.name}: {reason}; {image.describe()}; log {job.log_file}")
        changes.append(_make(job, reason))
    if service.cluster is not None and (reason is not None or _workers_differ(service.cluster, image.image)):
        changes.append(_copy_to_workers(service.cluster, image.image))
    return changes


def _image_id(host_name: str, image: str) -> str | None:
    return inventory.get_host(host_name).get_fact(ImageMade, image=image, _sudo=_sudo()).image_id


def _workers_differ(cluster: Cluster, image: str) -> bool:
    """Whether a worker runs another image ID than the head (read on each, at prepare)."""
    wanted = _image_id(cluster.head.host_name, image)
    return any(_image_id(worker.host_name, image) != wanted for worker in cluster.workers)


def _compare_with_head(cluster: Cluster, image: str) -> None:
    here, head = _image_id(host.name, image), _image_id(cluster.head.host_name, image)
    if here != head:
        logger.warning(f"{host.print_prefix}image {image} here is {str(here)[:19]}, the head "
                       f"{cluster.head.host_name}'s is {str(head)[:19]}: the head copies it over the link")


def _copy_to_workers(cluster: Cluster, image: str) -> OperationMeta:
    """``docker save | ssh worker docker load`` over the link, for each worker whose ID differs.

    Emitted only when the head's image is made in this run or a worker's differs (a fact)."""
    script = copy_script(image, cluster, host.data.service_user, int(host.data.cluster_ssh_port))
    return server.shell(
        name=f"Copy {image} to the workers over the link ({', '.join(w.host_name for w in cluster.workers)})",
        commands=[f"bash -c {shlex.quote(script)}"],
    )


def _checkout(checkout: UpstreamCheckout) -> OperationMeta | None:
    """Clone or move the upstream checkout to the pinned commit; nothing when it is there."""
    current = host.get_fact(GitCheckout, path=checkout.directory, _sudo=_sudo())
    if current is not None and current["owner"] != "root":
        raise ConfigError(f"host {host.name!r} data", "upstream_checkout_dir",
                          f"{checkout.directory} is owned by {current['owner']}, but root runs the "
                          "build script in it", allowed="a directory only root can write; remove "
                          "this one or point upstream_checkout_dir elsewhere")
    if current is not None and current["commit"] is None:
        raise ConfigError(f"host {host.name!r} data", "upstream_checkout_dir",
                          f"{checkout.directory} exists and is not a git checkout",
                          allowed="remove it, or point upstream_checkout_dir elsewhere")
    if current is not None and (current["commit"], current["origin"]) == (checkout.commit, checkout.repo_url):
        return None
    directory, url = shlex.quote(checkout.directory), shlex.quote(checkout.repo_url)
    git = f"{_GIT} -C {directory}"
    if current is None:
        commands = [f"mkdir -p {shlex.quote(_parent(checkout.directory))}",
                    f"{_GIT} clone -q --no-checkout -- {url} {directory}"]
    else:
        commands = [f"{git} remote set-url origin -- {url}", f"{git} fetch -q --tags origin"]
    commands += [
        # a commit no branch reaches any more is fetched by id
        f"{git} cat-file -e {checkout.commit}^{{commit}} 2>/dev/null"
        f" || {git} fetch -q origin {checkout.commit}",
        f"{git} checkout -q --detach {checkout.commit}",
    ]
    # Emitted only when the GitCheckout fact above differs from the pinned commit: no _if needed.
    return server.shell(
        name=f"Check out {checkout.repo_url} at {checkout.commit[:12]} in {checkout.directory}",
        commands=commands,
    )


def _make(job: ImageJob, reason: str) -> OperationMeta:
    """Start the runner detached, then follow it; the second operation fails when the job does.

    Called only when the image's record differs from the plan, so no _if is needed.
    """
    server.shell(
        name=f"Start {job.activity} {job.image} in the background ({reason}; log: {job.log_file})",
        commands=[job.start_command()],
    )
    return python.call(
        name=f"Wait for {job.image}, showing progress (log: {job.log_file})",
        function=_follow,
        job=job,
        interval=float(host.data.deploy_poll_interval),
        sudo=_sudo(),
    )


def _follow(state, host, job: ImageJob, interval: float, sudo: bool) -> bool:
    report = Reporter(info=lambda message: host.log_styled(message, fg="cyan"),
                      error=lambda message: host.log_styled(message, fg="red", log_func=logger.error))
    return follow_image_job(on_host(host, sudo), job, interval, report)


def _parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0] or "/"


def _sudo() -> bool:
    """The deploy's own ``_sudo`` (facts read in deploy code do not inherit it)."""
    return bool((host.current_deploy_kwargs or {}).get("_sudo"))
