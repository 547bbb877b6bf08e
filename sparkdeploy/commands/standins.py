"""``sparkdeploy standins build|install``: the sandbox's stand-in images and upstream repository."""

from __future__ import annotations

import argparse
import sys
import time

from sparkdeploy import standins
from sparkdeploy.sandbox.local import SandboxError
from sparkdeploy.sandbox.state import load_state


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "standins", help="build the sandbox's stand-in images and upstream repo, or put them in it",
        description="The sandbox reaches no registry: the LiteLLM, Postgres and vLLM-runtime "
        f"images are built here (log: {standins.LOG_FILE}) and loaded into the sandbox's Docker "
        "engine, and a stand-in eugr/spark-vllm-docker repository is copied in.")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("build", help="build what changed (images, repository) on this machine").set_defaults(
        run=_build)
    actions.add_parser("install", help="build what changed, then load it into the running sandbox"
                       ).set_defaults(run=_install)


def _build(_args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        tags = standins.ensure_images()
        commits = standins.ensure_upstream_repo()
    except SandboxError as exc:
        return _fail(exc)
    print(f"stand-in images ready in {time.monotonic() - started:.0f} s: {', '.join(tags)}")
    print(f"stand-in upstream repository {standins.UPSTREAM_REPO}: commits {', '.join(commits)}")
    return 0


def _install(_args: argparse.Namespace) -> int:
    state = load_state()
    container = (state.resources.get("container") if state else None)
    if not container:
        return _fail(SandboxError("no container sandbox is up (start one: sparkdeploy sandbox up)"))
    started = time.monotonic()
    try:
        standins.install_into_sandbox(container)
    except SandboxError as exc:
        return _fail(exc)
    print(f"stand-ins installed in {container} in {time.monotonic() - started:.0f} s "
          f"(upstream repository at {standins.SANDBOX_REPO_DIR})")
    return 0


def _fail(exc: SandboxError) -> int:
    print(f"sparkdeploy standins: {exc}", file=sys.stderr)
    return 1
