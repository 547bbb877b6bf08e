"""The watchdog, the outside watcher and the GPU clock guard (the sparkwatch package's units).

Every host that serves a model gets the package, its settings and the watchdog timer; a
watcher host also the watcher timer. Timers are restarted only when their unit changed, so a
converged run leaves a pass in progress alone. The GPU clock cap is a boot unit, opt-in.
"""

from __future__ import annotations

import json

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.facts.server import Which
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from sparkdeploy.plan import HostPlan
from sparkdeploy.watchdog import CONFIG_DIR, CONFIG_FILE, INSTALL_DIR, STATE_DIR
from tasks.serving import place

_UNIT_DIR = "/etc/systemd/system"
_GPU_CLOCK_UNIT = "sparkdeploy-gpu-clock.service"


@deploy("Watchdog")
def watchdog_services(plan: HostPlan) -> None:
    if plan.watch_files:
        for path, mode in ((f"{INSTALL_DIR}/sparkwatch", "0755"), (CONFIG_DIR, "0755"), (STATE_DIR, "0700")):
            files.directory(name=f"Create {path}", path=path, user="root", group="root", mode=mode)
        # settings and package are read afresh by every pass: placing them restarts nothing
        for rendered in plan.watch_files:
            place(rendered)
        config = json.loads(next(rendered.content for rendered in plan.watch_files
                                 if rendered.path == CONFIG_FILE))
        _timer("sparkdeploy-watchdog", "watchdog", "probe the served models, restart a wedged one",
               config["watchdog"]["enabled"], host.data.watchdog_interval,
               host.data.vllm_health_timeout + 120)
        _timer("sparkdeploy-watcher", "watcher", "power-cycle a watched Spark that is dead",
               config["watcher"]["enabled"], host.data.watcher_interval,
               host.data.watcher_command_timeout + 60)
    else:
        for unit in ("sparkdeploy-watchdog", "sparkdeploy-watcher"):
            _absent(f"{unit}.timer", f"{unit}.service")
    _gpu_clock(host.data.gpu_clock_limit_mhz)


def _timer(unit: str, command: str, purpose: str, enabled: bool, interval: int, timeout: int) -> None:
    if not enabled:
        _absent(f"{unit}.timer", f"{unit}.service")
        return
    service = files.template(
        name=f"Describe {unit}.service ({purpose})",
        src="templates/etc/systemd/system/sparkwatch.service.j2",
        dest=f"{_UNIT_DIR}/{unit}.service",
        user="root", group="root", mode="0644",
        description=f"sparkdeploy {command}: {purpose}",
        install_dir=INSTALL_DIR, config_file=CONFIG_FILE, command=command, identifier=unit,
        timeout=timeout,
    )
    timer = files.template(
        name=f"Run {unit} every {interval} s",
        src="templates/etc/systemd/system/sparkwatch.timer.j2",
        dest=f"{_UNIT_DIR}/{unit}.timer",
        user="root", group="root", mode="0644",
        description=f"Run the sparkdeploy {command} every {interval} s",
        interval=interval,
    )
    systemd.daemon_reload(name=f"Load the changed {unit} units", _if=any_changed(service, timer))
    systemd.service(name=f"Keep {unit}.timer enabled and running", service=f"{unit}.timer",
                    running=True, enabled=True)
    systemd.service(name=f"Restart {unit}.timer for its new schedule", service=f"{unit}.timer",
                    restarted=True, _if=timer.did_change)


def _gpu_clock(mhz: int | None) -> None:
    if mhz is None:
        _absent(_GPU_CLOCK_UNIT)
        return
    if not host.get_fact(Which, command="nvidia-smi"):
        logger.warning(f"{host.print_prefix}no nvidia-smi on this host: the GPU clock cap of {mhz} MHz "
                       "is installed but skips itself at boot (it says so in the journal)")
    unit = files.template(
        name=f"Cap the GPU clock at {mhz} MHz at every boot",
        src=f"templates/etc/systemd/system/{_GPU_CLOCK_UNIT}.j2",
        dest=f"{_UNIT_DIR}/{_GPU_CLOCK_UNIT}",
        user="root", group="root", mode="0644",
        mhz=mhz, install_dir=INSTALL_DIR,
    )
    systemd.daemon_reload(name="Load the changed GPU clock unit", _if=unit.did_change)
    systemd.service(name="Keep the GPU clock cap enabled and applied", service=_GPU_CLOCK_UNIT,
                    running=True, enabled=True)
    systemd.service(name="Apply the new GPU clock cap", service=_GPU_CLOCK_UNIT, restarted=True,
                    _if=unit.did_change)


def _absent(*units: str) -> None:
    """Stop and remove units the data no longer wants (nothing where they were never placed)."""
    present = [unit for unit in units if host.get_fact(File, path=f"{_UNIT_DIR}/{unit}")]
    removed = []
    for unit in present:
        systemd.service(name=f"Stop and disable {unit} (no longer wanted)", service=unit,
                        running=False, enabled=False)
        removed.append(files.file(name=f"Remove {_UNIT_DIR}/{unit}", path=f"{_UNIT_DIR}/{unit}",
                                  present=False, user="root", group="root", mode="0644"))
    if removed:
        systemd.daemon_reload(name=f"Forget {', '.join(present)}", _if=any_changed(*removed))
