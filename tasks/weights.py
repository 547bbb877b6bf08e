"""The recipe's model weights on the host before vLLM starts, from where the operator keeps them.

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
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.server import Users
from pyinfra.operations import apt, files, pip

from sparkdeploy.facts import HubSnapshot
from sparkdeploy.plan import HostPlan
from sparkdeploy.weights import (
    FETCH_SCRIPT,
    HUB_CLIENT,
    WeightsPlan,
    check_snapshot,
    human_bytes,
    pip_install_args,
    weights_plan,
)
from sparkdeploy.weights_ops import hub_snapshot, snapshot_readable


@deploy("Model weights")
def model_weights(plan: HostPlan) -> None:
    if plan.vllm is None:
        return
    recipe = plan.vllm.recipe
    weights = weights_plan(host.name, host.data.dict(), recipe.model, recipe.source)
    if weights.store == "nfs":
        _nfs_store(weights)
    else:
        _hf_cache(weights)


def _nfs_store(weights: WeightsPlan) -> None:
    expect_nfs = bool(host.data.get("host_can_mount_nfs", True))
    listing = host.get_fact(HubSnapshot, cache_dir=weights.cache_dir, repo_id=weights.repo_id,
                            revision=weights.revision, _sudo=True)
    verdict = check_snapshot(listing, weights, expect_nfs=expect_nfs)
    if verdict.complete:
        return
    logger.warning(f"{host.print_prefix}weights of {weights.label} not usable yet: {verdict.reason}; "
                   "the deploy checks again before vLLM starts (an earlier step may mount the store)")
    snapshot_readable(
        name=f"Check that the {weights.label} weights are readable on the model store {weights.cache_dir}",
        plan=weights,
        expect_nfs=expect_nfs,
    )


def _hf_cache(weights: WeightsPlan) -> None:
    user = weights.user
    account = host.get_fact(Users).get(user) or {}
    group = account.get("group", user)
    files.directory(
        name=f"Keep the Hugging Face hub cache {weights.cache_dir} for {user}",
        path=weights.cache_dir,
        user=user, group=group, mode=host.data.get("caches_mode", "0755"),
    )
    if weights.token is not None:
        files.put(
            name="Place the Hugging Face token for gated models (secret)",
            src=StringIO(weights.token),
            dest=weights.token_path,
            user=user, group=group, mode="0600",
        )

    listing = host.get_fact(HubSnapshot, cache_dir=weights.cache_dir, repo_id=weights.repo_id,
                            revision=weights.revision, _sudo=True)
    verdict = check_snapshot(listing, weights)
    if verdict.complete:
        return
    cached = f" ({human_bytes(verdict.present_bytes)} already cached)" if verdict.present_bytes else ""
    logger.info(f"{host.print_prefix}weights of {weights.label} to fetch: {verdict.reason}{cached}")

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
        user=user, group=group, mode="0755",
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
    hub_snapshot(
        name=f"Fetch the {weights.label} weights into {weights.cache_dir}",
        # the token stays in its file: it never travels in an operation's arguments
        plan=replace(weights, token=None),
    )
