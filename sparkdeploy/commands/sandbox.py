"""``sparkdeploy sandbox up|down|status``: a local fresh-Spark stand-in for the deploy and its tests."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from sparkdeploy.sandbox.backends import BACKENDS, DEFAULT_BACKEND
from sparkdeploy.sandbox.image import VARIANTS
from sparkdeploy.sandbox.lifecycle import down, status, up
from sparkdeploy.sandbox.local import SandboxError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sandbox", help="start, stop or show the local sandbox host (group 'sandbox')",
        description="A disposable fresh-Spark stand-in on this machine: Debian with systemd, "
        "sshd and a sudo deploy user, reachable on a loopback port; inventory.py lists it in "
        "group 'sandbox' while it is up.")
    actions = parser.add_subparsers(dest="action", required=True)
    start = actions.add_parser("up", help="start the sandbox (keeps a running one) with the "
                               "stand-ins its data points at")
    start.add_argument("--backend", choices=sorted(BACKENDS), default=DEFAULT_BACKEND,
                       help=f"how the host is made (default: {DEFAULT_BACKEND})")
    start.add_argument("--variant", choices=sorted(VARIANTS), default="default",
                       help="default: Docker engine with compose v2 preinstalled, as on DGX OS; "
                       "bare: without it, to exercise the deploy's Docker install")
    start.add_argument("--fresh", action="store_true",
                       help="replace a running sandbox with a new one")
    start.add_argument("--nodes", type=int, choices=(1, 2), default=1,
                       help="2: two hosts cabled like a Spark pair; the container pair serves "
                       "one model as a cluster, the VM pair shows the deploy configuring the link")
    start.set_defaults(run=_up)
    stop = actions.add_parser("down", help="remove the sandbox and stop its stand-in servers")
    stop.add_argument("--backend", choices=sorted(BACKENDS), default=DEFAULT_BACKEND,
                      help="backend whose leftovers to remove when no sandbox is recorded")
    stop.set_defaults(run=_down)
    actions.add_parser("status", help="show the sandbox and how to reach it").set_defaults(
        run=_status)


def _up(args: argparse.Namespace) -> int:
    try:
        result = up(args.backend, args.variant, fresh=args.fresh, progress=progress_printer(),
                    nodes=args.nodes)
    except SandboxError as exc:
        return _fail(exc)
    verb = "already up" if result.reused else f"up in {result.seconds:.1f} s"
    print(f"sandbox {verb} ({result.state.backend}, {result.state.variant})")
    _print(status() or {})
    return 0


def _down(args: argparse.Namespace) -> int:
    try:
        removed = down(args.backend)
    except SandboxError as exc:
        return _fail(exc)
    print("sandbox removed" if removed else "no sandbox was up")
    return 0


def _status(_args: argparse.Namespace) -> int:
    try:
        lines = status()
    except SandboxError as exc:
        return _fail(exc)
    if lines is None:
        print("no sandbox is up (start one: sparkdeploy sandbox up)")
        return 3
    _print(lines)
    return 0


def progress_printer(stream: TextIO | None = None):
    """Progress lines for long steps (first image builds take minutes), stamped with the time;
    on stdout unless ``stream`` says otherwise."""
    started = time.monotonic()

    def report(line: str) -> None:
        print(f"  [{time.monotonic() - started:5.0f} s] {line}", file=stream or sys.stdout, flush=True)

    return report


def _print(lines: dict[str, str]) -> None:
    width = max(map(len, lines), default=0)
    for key, value in lines.items():
        print(f"  {key:<{width}}  {value}")


def _fail(exc: SandboxError) -> int:
    print(f"sparkdeploy sandbox: {exc}", file=sys.stderr)
    return 1
