"""sshd hardened from data, validated right before it is installed, a fresh login proven after the
reload, and sshd kept out of the OOM killer.

dev-sec's ssh_hardening values, adjusted for the Spark (NVIDIA Sync and the DGX Dashboard need
``AllowTcpForwarding local``), in a ``00-`` drop-in because sshd keeps the first value it reads
(cloud-init's ``50-cloud-init.conf`` would otherwise win). A hardening run must never lock the
operator out: the deploy refuses to turn passwords off for the account pyinfra logs in as (and
the others data names) unless it has a key sshd would accept for a plain login; the candidate is
checked with ``sshd -t`` in the same command that installs it; after the reload a new SSH
connection, made as pyinfra makes its own, must succeed, or the previous drop-in is put back and
the host's deploy stops. Ubuntu 24.04 starts sshd from ``ssh.socket``; the deploy reloads
``ssh.service`` only when it runs.
"""

from hashlib import sha1
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.files import File, FindInFile, Sha1File
from pyinfra.operations import files, python, server, systemd

from sparkdeploy import sshd
from sparkdeploy.errors import ConfigError
from sparkdeploy.facts import SshdKexAlgorithms
from sparkdeploy.ssh_keys import AuthorizedKeys
from sparkdeploy.ssh_login import FreshLogin, login_user


@deploy("sshd hardening")
def sshd_hardening() -> None:
    source = f"host {host.name!r} data"
    host_kex = host.get_fact(SshdKexAlgorithms, candidates=host.data.get("sshd_kex_post_quantum") or [])
    settings = sshd.settings(host.data, source, host_kex)
    oom_score_adjust = sshd.oom_score_adjust(host.data, source)
    if host.data.get("sshd_kex_post_quantum") and not host_kex:
        logger.warning(f"{host.print_prefix}sshd has none of sshd_kex_post_quantum: key exchange "
                       "stays classic (ssh-audit warns) until OpenSSH is 8.5 or newer")
    user = login_user(host.data, host.name)
    keys = {}
    if sshd.passwords_disabled(host.data):
        keys = {account: host.get_fact(AuthorizedKeys, user=account, files=sshd.AUTHORIZED_KEYS_FILES)
                for account in sshd.key_login_users(host.data, source, user)}
    sshd.check_lockout(host.data, user, keys, source)
    includes = host.get_fact(FindInFile, path=sshd.MAIN_CONFIG,
                             pattern=r"^[[:space:]]*[Ii]nclude[[:space:]].*sshd_config[.]d/")
    if not includes:
        raise ConfigError(f"host {host.name!r}: {sshd.MAIN_CONFIG}", None,
                          "does not include sshd_config.d/*.conf, so the hardening drop-in would "
                          "be ignored", allowed="Ubuntu's default first line "
                          "'Include /etc/ssh/sshd_config.d/*.conf'")
    dropin = sshd.render_dropin(settings)
    live = host.get_fact(File, path=sshd.DROPIN_PATH) or {}
    install_needed = (host.get_fact(Sha1File, path=sshd.DROPIN_PATH) != sha1(dropin.encode()).hexdigest()
                      or (live.get("user"), live.get("group"), live.get("mode")) != ("root", "root", 600))

    files.directory(
        name="Keep a private place to check sshd candidates",
        path=sshd.STAGING_DIR,
        user="root", group="root", mode="0700",
    )
    files.template(
        name="Describe the configuration sshd will load",
        src="templates/etc/ssh/sparkdeploy/sshd_config.test.j2",
        dest=sshd.TEST_CONFIG_PATH,
        user="root", group="root", mode="0600",
        candidate=sshd.CANDIDATE_PATH,
        main_config=sshd.MAIN_CONFIG,
    )
    files.put(
        name="Stage the hardened sshd settings",
        src=StringIO(dropin),
        dest=sshd.CANDIDATE_PATH,
        user="root", group="root", mode="0600",
    )
    # Emitted only when the live drop-in's content, owner or mode differ (a fact): no _if needed.
    if install_needed:
        install = server.shell(
            name="Check the staged settings with sshd -t and install them (the previous ones kept)",
            commands=[sshd.install_command()],
        )
        systemd.service(
            name="Reload sshd if it is running (sessions stay open)",
            service="ssh.service",
            reloaded=True,
            _if=install.did_change,
        )
        fresh_login = FreshLogin()
        python.call(
            name=f"Log in afresh as pyinfra does ({user}), before the deploy goes on",
            function=fresh_login.check,
            _if=install.did_change,
        )
        server.shell(
            name="Put the previous sshd settings back: the fresh login failed",
            commands=[sshd.restore_command()],
            _if=fresh_login.failed,
        )
        python.call(
            name="Stop this host's deploy: the hardened settings locked pyinfra out",
            function=fresh_login.stop,
            _if=fresh_login.failed,
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
