"""The periodic page-cache drop: ``/etc/cron.d/drop-caches``, every 4 h by default.

GB10's unified memory makes the page cache compete with the GPU: vLLM sizes itself from
cudaMemGetInfo, which ignores reclaimable cache ("OOM after hours of uptime: page cache grows,
steals from GPU memory pool; a cron job runs every 4h"). The drop right before vLLM (re)starts
belongs to the step that starts it (tasks/services.py).
"""

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import files

from sparkdeploy import page_cache


@deploy("Page-cache drop")
def page_cache_drop() -> None:
    schedule = page_cache.cron_schedule(host.data.page_cache_drop_schedule, f"host {host.name!r} data")
    if not schedule:
        files.file(
            name="No periodic page-cache drop",
            path=page_cache.CRON_PATH,
            present=False,
            user="root", group="root", mode="0644",
        )
        return
    files.template(
        name="Drop the page cache on a schedule (cron)",
        src="templates/etc/cron.d/drop-caches.j2",
        dest=page_cache.CRON_PATH,
        user="root", group="root", mode="0644",
        schedule=schedule,
        command=page_cache.DROP_COMMAND,
    )
    if not host.data.get("host_can_write_sysctl", True):
        logger.warning(f"{host.print_prefix}the cron job is in place but its drops fail here: "
                       "this host cannot write /proc/sys (host_can_write_sysctl is false)")
