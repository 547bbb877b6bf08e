"""``sparkdeploy standins build|install``: the sandbox's stand-in images and upstream repository."""

from __future__ import annotations

import argparse
import sys
import time

from sparkdeploy import standins
from sparkdeploy.commands.sandbox import progress_printer
from sparkdeploy.sandbox.backends import load_backend
from sparkdeploy.sandbox.local import SandboxError
from sparkdeploy.sandbox.state import load_state


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "standins", help="build the sandbox's stand-in images and upstream repo, or put them in it",
        description="The sandbox reaches no registry: the LiteLLM, Postgres and vLLM-runtime "
        f"images are built here (log: {standins.LOG_FILE}) and loaded into the sandbox's Docker "
        "engine (upstream's prebuilt ones pushed to the stand-in registry), and a stand-in "
        "eugr/spark-vllm-docker repository is copied in. `sparkdeploy sandbox up` does this itself.")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("build", help="build what changed (images, repository) on this machine").set_defaults(
        run=_build)
    actions.add_parser("install", help="build what changed, then load it into the running sandbox"
                       ).set_defaults(run=_install)


def _build(_args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        tags = standins.ensure_images(progress=progress_printer())
        commits = standins.ensure_upstream_repo()
    except SandboxError as exc:
        return _fail(exc)
    print(f"stand-in images ready in {time.monotonic() - started:.0f} s: {', '.join(tags)}")
    print(f"stand-in upstream repository {standins.UPSTREAM_REPO}: commits {', '.join(commits)}")
    return 0


def _install(_args: argparse.Namespace) -> int:
    state = load_state()
    if state is None:
        return _fail(SandboxError("no sandbox is up (start one: sparkdeploy sandbox up, which "
                                  "installs the stand-ins itself)"))
    started = time.monotonic()
    try:
        load_backend(state.backend).install_standins(state, progress_printer())
    except SandboxError as exc:
        return _fail(exc)
    print(f"stand-ins installed in the {state.backend} sandbox in {time.monotonic() - started:.0f} s")
    return 0


def _fail(exc: SandboxError) -> int:
    print(f"sparkdeploy standins: {exc}", file=sys.stderr)
    return 1
