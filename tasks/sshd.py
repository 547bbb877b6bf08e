"""sshd hardened from data, validated before it is installed, and kept out of the OOM killer.

dev-sec's ssh_hardening values, adjusted for the Spark (NVIDIA Sync and the DGX Dashboard need
``AllowTcpForwarding local``), in a ``00-`` drop-in because sshd keeps the first value it reads
(cloud-init's ``50-cloud-init.conf`` would otherwise win). The candidate is checked with
``sshd -t`` before it replaces the live file, and the deploy refuses to turn passwords off for an
account without an authorized key: a hardening run must never lock the operator out. Ubuntu
24.04 starts sshd from ``ssh.socket``; the deploy reloads ``ssh.service`` only when it runs.
"""

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.files import FindInFile
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from sparkdeploy import sshd
from sparkdeploy.errors import ConfigError
from sparkdeploy.ssh_keys import AuthorizedKeyCount

_TEMPLATE = "templates/etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf.j2"


@deploy("sshd hardening")
def sshd_hardening() -> None:
    source = f"host {host.name!r} data"
    settings = sshd.settings(host.data, source)
    oom_score_adjust = sshd.oom_score_adjust(host.data, source)
    key_counts = {}
    if sshd.passwords_disabled(host.data):
        key_counts = {user: host.get_fact(AuthorizedKeyCount, user=user)
                      for user in sshd.key_login_users(host.data, source)}
    sshd.check_lockout(host.data, key_counts, source)
    includes = host.get_fact(FindInFile, path=sshd.MAIN_CONFIG,
                             pattern=r"^[[:space:]]*[Ii]nclude[[:space:]].*sshd_config[.]d/")
    if not includes:
        raise ConfigError(f"host {host.name!r}: {sshd.MAIN_CONFIG}", None,
                          "does not include sshd_config.d/*.conf, so the hardening drop-in would "
                          "be ignored", allowed="Ubuntu's default first line "
                          "'Include /etc/ssh/sshd_config.d/*.conf'")

    files.directory(
        name="Keep a private place to check sshd candidates",
        path=sshd.STAGING_DIR,
        user="root", group="root", mode="0700",
    )
    test_config = files.template(
        name="Describe the configuration sshd will load",
        src="templates/etc/ssh/sparkdeploy/sshd_config.test.j2",
        dest=sshd.TEST_CONFIG_PATH,
        user="root", group="root", mode="0600",
        candidate=sshd.CANDIDATE_PATH,
        main_config=sshd.MAIN_CONFIG,
    )
    candidate = files.template(
        name="Stage the hardened sshd settings",
        src=_TEMPLATE,
        dest=sshd.CANDIDATE_PATH,
        user="root", group="root", mode="0600",
        settings=settings,
    )
    server.shell(
        name="Check the staged settings with sshd -t before installing them",
        commands=[
            # socket-activated or stopped, sshd -t wants its privilege separation directory
            "mkdir -p -m 0755 /run/sshd",
            f"sshd -t -f {sshd.TEST_CONFIG_PATH} && "
            f"sshd -T -C user=root,host=localhost,addr=127.0.0.1 -f {sshd.TEST_CONFIG_PATH} "
            f"> /dev/null || {{ rm -f {sshd.CANDIDATE_PATH}; exit 1; }}",
        ],
        _if=any_changed(candidate, test_config),
    )
    live = files.template(
        name="Install the hardened sshd settings",
        src=_TEMPLATE,
        dest=sshd.DROPIN_PATH,
        user="root", group="root", mode="0600",
        settings=settings,
    )
    systemd.service(
        name="Reload sshd if it is running (sessions stay open)",
        service="ssh.service",
        reloaded=True,
        _if=live.did_change,
    )

    if not host.data.get("host_can_lower_oom_score", True):
        logger.warning(f"{host.print_prefix}ssh.service gets OOMScoreAdjust={oom_score_adjust}, but "
                       "this host cannot lower OOM scores (host_can_lower_oom_score is false): "
                       "the running sshd keeps its own")
    oom = files.template(
        name="Keep sshd out of the OOM killer's reach",
        src="templates/etc/systemd/system/ssh.service.d/10-sparkdeploy-oom.conf.j2",
        dest=sshd.OOM_DROPIN_PATH,
        user="root", group="root", mode="0644",
        oom_score_adjust=oom_score_adjust,
    )
    systemd.daemon_reload(name="Load sshd's OOM setting", _if=oom.did_change)
    systemd.service(
        name="Restart sshd to apply its OOM setting (sessions stay open)",
        service="ssh.service",
        restarted=True,
        _if=oom.did_change,
    )
