"""``python3 -m sparkwatch {watchdog,watcher,status,gpu-clock}`` (systemd units run the first two)."""

from __future__ import annotations

import argparse
import json
import sys

from sparkwatch import gpu_clock, status, watchdog, watcher
from sparkwatch.settings import CONFIG_FILE, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparkwatch", description=__doc__)
    parser.add_argument("--config", default=CONFIG_FILE, help="settings the deploy wrote")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("watchdog", help="probe this host's models once; recover a wedged one")
    commands.add_parser("watcher", help="check the watched hosts once; power-cycle a dead one")
    commands.add_parser("status", help="print this host's models and their state as JSON")
    clock = commands.add_parser("gpu-clock", help="cap the GPU clock (nvidia-smi -lgc)")
    clock.add_argument("mhz", type=int)
    args = parser.parse_args(argv)
    if args.command == "gpu-clock":
        return gpu_clock.apply(args.mhz)
    settings = load_settings(args.config)
    if args.command == "watchdog":
        watchdog.run_once(settings)
    elif args.command == "watcher":
        watcher.run_once(settings)
    else:
        json.dump(status.collect(settings), sys.stdout)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
