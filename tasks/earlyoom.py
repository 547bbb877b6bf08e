"""earlyoom: kill the model server, not the box, when unified memory runs out.

On GB10 a runaway model exhausts the memory the whole system shares and the box stops
responding before the kernel's OOM killer acts. earlyoom acts earlier, never picks sshd, systemd
or the container engine, and picks vLLM first (its CUDA memory is not in its RSS, so the default
ranking could kill a bystander). Its arguments are checked against the installed version: 1.7,
Ubuntu 24.04's, exits on ``--ignore``.
"""

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, systemd

from sparkdeploy import earlyoom
from sparkdeploy.packages import missing_packages


@deploy("earlyoom")
def earlyoom_service() -> None:
    source = f"host {host.name!r} data"
    installed = host.get_fact(DebPackages)
    versions = sorted(installed.get("earlyoom") or [])
    version_text = versions[-1] if versions else host.get_fact(
        Command, command="apt-cache policy earlyoom 2>/dev/null | sed -n 's/^ *Candidate: //p'")
    version = earlyoom.parse_version(version_text)
    if version is None and host.data.earlyoom_extra_args:
        logger.warning(f"{host.print_prefix}earlyoom's version is unknown (not installed, no apt "
                       f"candidate): checking earlyoom_extra_args against "
                       f"{'.'.join(map(str, earlyoom.OLDEST_VERSION))}")
    arguments = earlyoom.arguments(host.data, version, source)

    if missing_packages(installed, ["earlyoom"]):
        apt.update(name="Refresh apt's package lists", cache_time=3600)
    apt.packages(name="Install earlyoom", packages=["earlyoom"])
    config = files.template(
        name="Tell earlyoom what to spare and what to kill first",
        src="templates/etc/default/earlyoom.j2",
        dest=earlyoom.DEFAULT_FILE,
        user="root", group="root", mode="0644",
        args=earlyoom.default_file_value(arguments),
    )
    systemd.service(
        name="Keep earlyoom enabled and running",
        service="earlyoom.service",
        running=True,
        enabled=True,
    )
    systemd.service(
        name="Restart earlyoom to load its new arguments",
        service="earlyoom.service",
        restarted=True,
        _if=config.did_change,
    )
