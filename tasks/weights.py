"""Each model's weights on the host before vLLM starts, from where the operator keeps them.

A fresh Spark has no weights, and vLLM started without them downloads 60+ GB on every launch or
fails. With ``model_store = "hf_cache"`` the deploy fetches the recipe's ``model`` at
``model_revision`` into the service user's ``~/.cache/huggingface/hub`` (the cache vLLM's
container mounts) with the pinned hub client, detached, resumable, bounded by
``model_download_timeout`` and after a free-space check; a token for gated models goes to
``~/.cache/huggingface/token`` (mode 0600), where the hub client and the container read it. With
``model_store = "nfs"`` it checks that the snapshot is there and readable through the mount.
Either way a complete snapshot costs nothing: the decision is a prepare-time fact, so a
converged host yields no operation at all, and vLLM runs with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from dataclasses import replace

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.server import Users
from pyinfra.operations import apt, files, pip

from sparkdeploy.budget import Reserved, check_model, reservation_label
from sparkdeploy.errors import ConfigError
from sparkdeploy.facts import HubSnapshot
from sparkdeploy.operations import secret_file
from sparkdeploy.plan import HostPlan
from sparkdeploy.vllm_service import VllmService, config_fit_warning, config_need
from sparkdeploy.weights import (
    FETCH_SCRIPT,
    HUB_CLIENT,
    SnapshotListing,
    WeightsPlan,
    check_snapshot,
    human_bytes,
    pip_install_args,
    weights_plans,
    weights_too_large,
)
from sparkdeploy.weights_ops import hub_snapshot, snapshot_readable


@deploy("Model weights")
def model_weights(plan: HostPlan) -> None:
    """Every model's weights (a repository two models load, once), before any engine starts."""
    every: list[tuple[WeightsPlan, VllmService]] = []
    for service in plan.models:
        for weights in weights_plans(host.name, service.data, service.repos, service.recipe.source,
                                     service.weight_limit):
            if all((weights.repo_id, weights.revision) != (seen.repo_id, seen.revision) for seen, _ in every):
                every.append((weights, service))
    if not every:
        return
    if every[0][0].store == "nfs":
        _nfs_store(every)
    else:
        _hf_cache(every)


def _listing(weights: WeightsPlan) -> SnapshotListing:
    return host.get_fact(HubSnapshot, cache_dir=weights.cache_dir, repo_id=weights.repo_id,
                         revision=weights.revision, _sudo=True)


def _complete(weights: WeightsPlan, service: VllmService, expect_nfs: bool = False) -> bool:
    """Whether the snapshot is usable; a complete model too large for the host stops the run."""
    listing = _listing(weights)
    if not check_snapshot(listing, weights, expect_nfs=expect_nfs).complete:
        return False
    too_large = weights_too_large(listing, weights)
    if too_large:
        raise ConfigError(f"host {host.name!r}", "recipe", f"{too_large} (recipe {service.recipe.source})",
                          allowed="a smaller quantization, a higher gpu_memory_utilization, or a "
                          "cluster recipe that splits the model over several Sparks")
    if weights.role == "model" and service.memory_gib is not None:
        # a reservation must hold the model: refused before its engine starts
        check_model(host.name, _reserved(service), config_need(service, listing))
    elif weights.role == "model":
        warning = config_fit_warning(host.name, service, host.data.dict(), listing)
        if warning:
            logger.warning(warning)
    return True


def _reserved(service: VllmService) -> Reserved:
    return Reserved(service.recipe.model or service.model_name, reservation_label(service.model_name),
                    float(service.memory_gib or 0))


def _nfs_store(every: list[tuple[WeightsPlan, VllmService]]) -> None:
    expect_nfs = bool(host.data.get("host_can_mount_nfs", True))
    for weights, service in every:
        if _complete(weights, service, expect_nfs):
            continue
        logger.warning(f"{host.print_prefix}weights of {weights.label} not usable yet; the deploy "
                       "checks again before vLLM starts (an earlier step may mount the store)")
        snapshot_readable(
            name=f"Check that the {weights.label} weights are readable on the model store "
                 f"{weights.cache_dir}",
            plan=weights,
            expect_nfs=expect_nfs,
        )


def _hf_cache(every: list[tuple[WeightsPlan, VllmService]]) -> None:
    first = every[0][0]
    user = first.user
    account = host.get_fact(Users).get(user) or {}
    group = account.get("group", user)
    files.directory(
        name=f"Keep the Hugging Face hub cache {first.cache_dir} for {user}",
        path=first.cache_dir,
        user=user, group=group, mode=host.data.get("caches_mode", "0755"),
    )
    if first.token is not None:
        # written by the service user itself: a link it planted there is replaced, not followed
        secret_file(
            name="Place the Hugging Face token for gated models (secret)",
            content=first.token,
            path=first.token_path,
            user=user, group=group, mode="0600",
        )
    to_fetch = [weights for weights, service in every if not _complete(weights, service)]
    if not to_fetch:
        return
    for weights in to_fetch:
        verdict = check_snapshot(_listing(weights), weights)
        cached = f" ({human_bytes(verdict.present_bytes)} already cached)" if verdict.present_bytes else ""
        logger.info(f"{host.print_prefix}{weights.role} {weights.label} to fetch: {verdict.reason}{cached}")
    _download_tool(first, group)
    for weights in to_fetch:
        hub_snapshot(
            name=f"Fetch the {weights.label} {_what(weights)} into {weights.cache_dir}",
            # the token stays in its file: it never travels in an operation's arguments
            plan=replace(weights, token=None),
        )


def _what(weights: WeightsPlan) -> str:
    return "weights" if weights.role == "model" else f"weights ({weights.role})"


def _download_tool(weights: WeightsPlan, group: str) -> None:
    """The pinned hub client and the download script, installed only when something is missing."""
    apt.packages(
        name="Install Python's venv module for the weights download tool",
        packages=["python3-venv"],
        update=True,
        cache_time=86400,
    )
    files.directory(
        name=f"Keep the weights download tool in {weights.tool_dir}",
        path=weights.tool_dir,
        user="root", group="root", mode="0755",
    )
    files.directory(
        name=f"Keep download logs and status in {weights.run_dir}",
        path=weights.run_dir,
        user=weights.user, group=group, mode="0755",
    )
    pip.packages(
        name=f"Install the Hugging Face hub client ({HUB_CLIENT}) for the download",
        packages=[HUB_CLIENT],
        virtualenv=weights.venv_dir,
        virtualenv_kwargs={"venv": True, "python": "python3"},
        extra_install_args=pip_install_args(weights.pip_index_url),
    )
    files.put(
        name="Place the weights download script",
        src=str(FETCH_SCRIPT),
        dest=weights.script_path,
        user="root", group="root", mode="0755",
    )
