"""How long the main job takes against the sandbox, and how much a converged run still does.

Not a test: prints sandbox boot time (image already built), first deploy, converged re-deploy,
drift check, and the number of commands a converged run sends to the host (each one a round
trip: the cost of "nothing to do"); for the qemu VM also its image build, cold boot, state save
and restore. Replaces any running sandbox with a fresh one.

    .venv/bin/python benchmarks/sandbox_timings.py [--backend container|vm] [--variant default]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from sparkdeploy.apply import apply_deploy
from sparkdeploy.drift import check_drift
from sparkdeploy.sandbox import vm
from sparkdeploy.sandbox.backends import BACKENDS, DEFAULT_BACKEND
from sparkdeploy.sandbox.lifecycle import up
from sparkdeploy.sandbox.state import HOST_NAME, SandboxState


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=DEFAULT_BACKEND)
    parser.add_argument("--variant", default="default")
    args = parser.parse_args()

    up(args.backend, args.variant)  # builds the image if needed, so boot is timed alone
    boot = up(args.backend, args.variant, fresh=True)
    standins_seconds = None
    if args.backend == "container":  # the VM serves no model: nothing to install
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "sparkdeploy.cli", "standins", "install"],
                       check=True, stdout=subprocess.DEVNULL)
        standins_seconds = time.monotonic() - started

    first = apply_deploy([HOST_NAME])
    if first.returncode != 0:
        print(first.failure_summary(), file=sys.stderr)
        return 1
    converged = apply_deploy([HOST_NAME], count_commands=True)
    started = time.monotonic()
    drift = check_drift([HOST_NAME])
    drift_seconds = time.monotonic() - started

    rows = [("sandbox boot (fresh, image cached)", f"{boot.seconds:.1f} s")]
    if standins_seconds is not None:
        rows.append(("stand-ins into the sandbox", f"{standins_seconds:.1f} s"))
    if args.backend == "vm":
        rows += _vm_rows(boot.state)
    rows += [
        ("first deploy", f"{first.seconds:.1f} s ({first.change_count} operations changed)"),
        ("converged re-deploy", f"{converged.seconds:.1f} s "
                                f"({converged.change_count} operations changed)"),
        ("drift check", f"{drift_seconds:.1f} s (exit {drift.exit_code})"),
        ("remote commands, converged run", str(converged.remote_commands)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"sandbox: {args.backend}, {args.variant}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


def _vm_rows(state: SandboxState) -> list[tuple[str, str]]:
    """The VM image's build and first (cold) boot as recorded when it was built, and this restore."""
    recorded = vm.image_timings(state)

    def seconds(key: str) -> str:
        return f"{recorded[key]:.1f} s" if key in recorded else "not recorded"

    return [
        ("VM image build (debvm-create to qcow2)", seconds("image_build")),
        ("VM cold boot to SSH", seconds("first_boot_ssh")),
        ("VM cold boot to system running", seconds("first_boot_running")),
        ("VM RAM state save", f"{seconds('state_save')} ({recorded.get('state_bytes', 0) / 1e6:.0f} MB)"),
        ("VM restore to SSH (in the boot above)", f"{seconds('boot')} ({state.resources.get('boot')})"),
    ]


if __name__ == "__main__":
    sys.exit(main())
