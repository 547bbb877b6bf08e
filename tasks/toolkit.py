"""Docker Engine and the NVIDIA Container Toolkit, with the NVIDIA runtime registered in Docker.

DGX OS ships both from NVIDIA's repositories, so what is installed is detected first and only
configured: adding the toolkit repository next to NVIDIA's makes apt abort ("Conflicting values
set for option Signed-By"). Elsewhere the repository, its key and all four toolkit packages at
one pinned version are installed (1.17.8 at least: CVE-2025-23266). daemon.json is merged, never
rewritten: writing it wholesale is how the nvidia runtime usually gets lost.
"""

import shlex
from io import BytesIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import FileContents, FindInFile
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from sparkdeploy import daemon_json, toolkit
from sparkdeploy.data_values import http_url
from sparkdeploy.operations import docker_nvidia_runtime
from sparkdeploy.packages import missing_packages


@deploy("Docker and NVIDIA Container Toolkit")
def container_toolkit() -> None:
    source = f"host {host.name!r} data"
    version = toolkit.check_version(host.data.toolkit_version, source)
    repo_url = http_url(host.data.toolkit_repo_url, source, "toolkit_repo_url")
    installed = host.get_fact(DebPackages)
    marker = host.get_fact(FindInFile, path=toolkit.SOURCES_PATH, pattern=toolkit.MANAGED_MARKER)
    prefix = toolkit.repo_url_prefix(repo_url)
    listed_in = host.get_fact(
        Command, command=f"grep -rlF -- {shlex.quote(prefix)} /etc/apt/sources.list "
        f"/etc/apt/sources.list.d 2>/dev/null | grep -vxF {toolkit.SOURCES_PATH} || true")
    situation = toolkit.assess(installed, bool(marker), (listed_in or "").split(), host.name)
    for warning in situation.warnings:
        logger.warning(warning)

    wanted = list(host.data.docker_packages) if situation.install_docker else []
    if situation.install_packages:
        wanted += toolkit.pinned_packages(version)
    if situation.manage_repo:
        key = toolkit.check_key_file(host.data.toolkit_repo_key_file, source)
        keyring = files.put(
            name="Place the toolkit repository's signing key",
            src=BytesIO(key.read_bytes()),
            dest=toolkit.KEYRING_PATH,
            user="root", group="root", mode="0644",
        )
        sources = files.template(
            name="List the toolkit repository for apt",
            src="templates/etc/apt/sources.list.d/nvidia-container-toolkit.list.j2",
            dest=toolkit.SOURCES_PATH,
            user="root", group="root", mode="0644",
            repo_line=toolkit.repo_line(repo_url),
        )
        apt.update(
            name="Refresh apt's lists after a repository change",
            _if=any_changed(keyring, sources),
        )
    if missing_packages(installed, wanted):
        apt.update(name="Refresh apt's package lists", cache_time=3600)
    if situation.install_docker:
        apt.packages(
            name="Install Docker Engine with the compose v2 plugin",
            packages=list(host.data.docker_packages),
        )
    if situation.install_packages:
        apt.packages(
            name=f"Install NVIDIA Container Toolkit {version}",
            packages=toolkit.pinned_packages(version),
        )
    else:
        logger.info(f"{host.print_prefix}NVIDIA Container Toolkit {situation.installed_version} "
                    "came with the system: configuring it only")

    systemd.service(
        name="Keep Docker enabled and running",
        service="docker.service",
        running=True,
        enabled=True,
    )
    if _runtime_registered_by_dropin():
        return
    runtime = docker_nvidia_runtime(
        name="Register the NVIDIA runtime in daemon.json (other keys kept)",
        path=daemon_json.PATH,
        user="root", group="root", mode="0644",
    )
    systemd.service(
        name="Restart Docker to load the changed daemon.json",
        service="docker.service",
        restarted=True,
        _if=runtime.did_change,
    )


def _runtime_registered_by_dropin() -> bool:
    """Report dockerd flags (docker.service and its drop-ins) that clash with daemon.json:
    dockerd refuses to start with a key set in both. True when a flag adds the nvidia runtime."""
    unit = host.get_fact(Command, command=daemon_json.UNIT_TEXT_COMMAND) or ""
    if daemon_json.flags_add_nvidia_runtime(unit):
        logger.warning(
            f"host {host.name!r}: dockerd's command line (see {daemon_json.DROPIN_DIR}) registers "
            f"the nvidia runtime with --add-runtime; leaving {daemon_json.PATH} alone (adding it "
            "there too would stop dockerd). Move it into daemon.json to let the deploy manage it")
        return True
    lines = host.get_fact(FileContents, path=daemon_json.PATH)
    try:
        config = daemon_json.parse(None if lines is None else "\n".join(lines))
    except daemon_json.DaemonJsonError:
        return False  # the runtime operation reports it
    conflicts = daemon_json.override_conflicts(unit, daemon_json.with_nvidia_runtime(config))
    if conflicts:
        logger.warning(
            f"host {host.name!r}: dockerd's command line (see {daemon_json.DROPIN_DIR}) passes "
            f"flags for {', '.join(conflicts)}, also set in {daemon_json.PATH}: dockerd refuses "
            "to start with both; remove the flags or the keys")
    return False
