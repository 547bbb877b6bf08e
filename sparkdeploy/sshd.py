"""The sshd hardening drop-in: settings from host data, checked before anything reaches a host.

Defaults follow dev-sec's ssh_hardening, adjusted for the Spark: NVIDIA Sync and the DGX
Dashboard tunnel through SSH local forwards, so ``AllowTcpForwarding local`` instead of ``no``,
and the crypto lists are the ones ssh-audit rates without failures. sshd keeps the first value it
reads, so the drop-in is named ``00-…`` to beat cloud-init's ``50-cloud-init.conf``. Key exchange
offers the hybrid post-quantum methods the host's sshd has first, then curve25519 for pyinfra,
whose paramiko has no post-quantum method.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import paramiko
from pyinfra.api.util import get_template

from sparkdeploy.cluster_trust import AUTHORIZED_KEYS_DIR
from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.errors import ConfigError
from sparkdeploy.ssh_keys import AccountKeys

DROPIN_PATH = "/etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf"
DROPIN_TEMPLATE = PROJECT_ROOT / "templates/etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf.j2"
# The candidate is validated here before it replaces the live drop-in.
STAGING_DIR = "/etc/ssh/sparkdeploy"
CANDIDATE_PATH = f"{STAGING_DIR}/00-sparkdeploy-hardening.conf"
# The drop-in the last install replaced, put back if a fresh login fails after the reload.
PREVIOUS_PATH = f"{STAGING_DIR}/00-sparkdeploy-hardening.conf.previous"
# Reads the candidate first, then the live configuration: the candidate's values win, exactly
# as the installed drop-in's will, so `sshd -t -f` checks the combination sshd will load.
TEST_CONFIG_PATH = f"{STAGING_DIR}/sshd_config.test"
MAIN_CONFIG = "/etc/ssh/sshd_config"
OOM_DROPIN_PATH = "/etc/systemd/system/ssh.service.d/10-sparkdeploy-oom.conf"

PERMIT_ROOT_LOGIN = ("no", "prohibit-password", "without-password", "forced-commands-only", "yes")
TCP_FORWARDING = ("no", "local", "remote", "yes", "all")
LOG_LEVELS = ("QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3")
# Algorithm names ssh-audit fails: SHA-1, MD5, CBC mode, NIST curves, legacy ciphers.
_AUDIT_FAILURES = re.compile(
    r"sha1|md5|ripemd|-cbc|^3des|arcfour|blowfish|cast128|nistp|^ssh-rsa$|^ssh-dss|^none$")
_ALGORITHM = re.compile(r"^[a-z0-9][a-z0-9@.+-]*$")
_MAX_STARTUPS = re.compile(r"^\d+(:\d+:\d+)?$")
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$")
# The users' own files, then the root-owned one the cluster trust writes (restricted keys only).
AUTHORIZED_KEYS_FILES = (".ssh/authorized_keys", ".ssh/authorized_keys2", f"{AUTHORIZED_KEYS_DIR}/%u")
# Settings every host gets (dev-sec's values); operator-facing ones come from data.
_FIXED = (
    ("PubkeyAuthentication", "yes"),
    ("AuthorizedKeysFile", " ".join(AUTHORIZED_KEYS_FILES)),
    ("PermitEmptyPasswords", "no"),
    ("HostbasedAuthentication", "no"),
    ("IgnoreRhosts", "yes"),
    ("IgnoreUserKnownHosts", "yes"),
    ("KerberosAuthentication", "no"),
    ("GSSAPIAuthentication", "no"),
    ("UsePAM", "yes"),
    ("PermitUserEnvironment", "no"),
    ("PermitTunnel", "no"),
    ("GatewayPorts", "no"),
    ("X11UseLocalhost", "yes"),
    ("TCPKeepAlive", "no"),
    ("UseDNS", "no"),
    ("Compression", "no"),
    ("PrintMotd", "no"),
    ("PrintLastLog", "no"),
    ("DebianBanner", "no"),
    ("StrictModes", "yes"),
    ("SyslogFacility", "AUTH"),
)


def settings(data: Mapping[str, Any], source: str, host_kex: Collection[str]) -> list[tuple[str, str]]:
    """The drop-in's ``Keyword value`` pairs, in file order; bad values raise ConfigError.
    ``host_kex``: the key exchange methods the host's sshd has (the SshdKexAlgorithms fact)."""
    passwords = _flag(data, "sshd_password_authentication", source)
    keyboard = _flag(data, "sshd_kbd_interactive_authentication", source)
    pairs = [
        ("PermitRootLogin", _choice(data, "sshd_permit_root_login", PERMIT_ROOT_LOGIN, source)),
        ("PasswordAuthentication", _yes_no(passwords)),
        ("KbdInteractiveAuthentication", _yes_no(keyboard)),
        # Keys only, unless the operator keeps a password method on.
        ("AuthenticationMethods", "any" if passwords or keyboard else "publickey"),
        ("AllowTcpForwarding", _choice(data, "sshd_allow_tcp_forwarding", TCP_FORWARDING, source)),
        ("AllowAgentForwarding", _yes_no(_flag(data, "sshd_allow_agent_forwarding", source))),
        ("X11Forwarding", _yes_no(_flag(data, "sshd_x11_forwarding", source))),
        ("MaxAuthTries", str(_count(data, "sshd_max_auth_tries", source, minimum=1))),
        ("LoginGraceTime", str(_count(data, "sshd_login_grace_time", source, minimum=1))),
        ("MaxSessions", str(_count(data, "sshd_max_sessions", source, minimum=1))),
        ("MaxStartups", _max_startups(data, source)),
        ("ClientAliveInterval", str(_count(data, "sshd_client_alive_interval", source))),
        ("ClientAliveCountMax", str(_count(data, "sshd_client_alive_count_max", source))),
        ("LogLevel", _choice(data, "sshd_log_level", LOG_LEVELS, source)),
        *_FIXED,
        ("KexAlgorithms", ",".join(kex_algorithms(data, source, host_kex))),
        ("Ciphers", _algorithms(data, "sshd_ciphers", source)),
        ("MACs", _algorithms(data, "sshd_macs", source)),
        ("HostKeyAlgorithms", _algorithms(data, "sshd_host_key_algorithms", source)),
    ]
    return pairs


def kex_algorithms(data: Mapping[str, Any], source: str, host_kex: Collection[str]) -> list[str]:
    """The hybrid post-quantum methods the host's sshd has, first, then the classic ones.

    The classic list must keep one method paramiko has (curve25519-sha256@libssh.org): pyinfra
    logs in with paramiko, which has no post-quantum key exchange, so without it the next deploy
    could not connect. ssh-audit warns about exactly those classic methods (no post-quantum
    protection); README explains why they stay.
    """
    post_quantum = _names(data, "sshd_kex_post_quantum", source, allow_empty=True)
    classic = _names(data, "sshd_kex_algorithms", source)
    paramiko_kex = [name for name in paramiko.Transport._preferred_kex if not _AUDIT_FAILURES.search(name)]
    if not set(classic).intersection(paramiko_kex):
        raise ConfigError(source, "sshd_kex_algorithms",
                          "has no key exchange paramiko speaks, so pyinfra could not log in again",
                          allowed=f"a list including one of {', '.join(paramiko_kex)}")
    return [name for name in post_quantum if name in host_kex] + classic


def render_dropin(pairs: Sequence[tuple[str, str]]) -> str:
    """The drop-in's text, rendered as ``files.template`` would."""
    return get_template(str(DROPIN_TEMPLATE)).render(settings=pairs)


def install_command(test_config: str = TEST_CONFIG_PATH, candidate: str = CANDIDATE_PATH,
                    live: str = DROPIN_PATH, previous: str = PREVIOUS_PATH) -> str:
    """Check the staged candidate with ``sshd -t`` and only then install it, in one command, so
    nothing can come between the check and the install; the replaced drop-in is kept."""
    test_q, candidate_q, live_q, previous_q = map(shlex.quote, (test_config, candidate, live, previous))
    return " && ".join([
        # socket-activated or stopped, sshd -t wants its privilege separation directory
        "mkdir -p -m 0755 /run/sshd",
        f"sshd -t -f {test_q}",
        f"sshd -T -C user=root,host=localhost,addr=127.0.0.1 -f {test_q} > /dev/null",
        f"{{ if [ -e {live_q} ]; then cp -p {live_q} {previous_q}; else rm -f {previous_q}; fi; }}",
        f"install -o root -g root -m 0600 {candidate_q} {live_q}.sparkdeploy-new",
        f"mv -f {live_q}.sparkdeploy-new {live_q}",
    ])


def restore_command(live: str = DROPIN_PATH, previous: str = PREVIOUS_PATH,
                    reload: str = "if systemctl is-active --quiet ssh.service; "
                                  "then systemctl reload ssh.service; fi") -> str:
    """Put back the drop-in the last install replaced (none: remove it) and reload sshd."""
    live_q, previous_q = shlex.quote(live), shlex.quote(previous)
    return (f"{{ if [ -e {previous_q} ]; then cp -p {previous_q} {live_q}; else rm -f {live_q}; fi; }}"
            f" && {{ {reload}; }}")


def effective_expectations(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """What ``sshd -T`` prints for each setting: lower-case keywords, values as written."""
    return {keyword.lower(): value for keyword, value in pairs}


def parse_effective_config(text: str) -> dict[str, str]:
    """``sshd -T`` output as keyword -> value (the first line of repeated keywords)."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        keyword, _, value = line.strip().partition(" ")
        if keyword:
            config.setdefault(keyword.lower(), value.strip())
    return config


def oom_score_adjust(data: Mapping[str, Any], source: str) -> int:
    value = data.get("sshd_oom_score_adjust")
    if isinstance(value, bool) or not isinstance(value, int) or not -1000 <= value <= 1000:
        raise ConfigError(source, "sshd_oom_score_adjust", f"{value!r} is not an OOM score adjustment",
                          allowed="an integer from -1000 (never killed) to 1000")
    return value


def passwords_disabled(data: Mapping[str, Any]) -> bool:
    return not data.get("sshd_password_authentication") and not data.get(
        "sshd_kbd_interactive_authentication")


def key_login_users(data: Mapping[str, Any], source: str, login_user: str) -> list[str]:
    """Accounts that must still get in by key once passwords are off: the one pyinfra logs in
    as (always, first), then ``sshd_key_login_users`` (None: the service user)."""
    configured = data.get("sshd_key_login_users")
    if configured is None:
        users = [data.get("service_user")]
    elif isinstance(configured, (list, tuple)):
        users = list(configured)
    else:
        raise ConfigError(source, "sshd_key_login_users", f"{configured!r} is not a list",
                          allowed="a list of account names, or null for the service user")
    names = [login_user]
    for user in users:
        if user is None:
            continue
        if not isinstance(user, str) or not _USER_NAME.match(user):
            raise ConfigError(source, "sshd_key_login_users", f"{user!r} is not an account name")
        if user not in names:
            names.append(user)
    return names


def check_lockout(data: Mapping[str, Any], login_user: str, keys: Mapping[str, AccountKeys | None],
                  source: str) -> None:
    """Refuse settings that would lock an operator out. ``login_user`` is the account pyinfra
    logs in as; ``keys`` maps accounts to their authorized keys (None: no such account), read
    from the host before any change."""
    permit_root = data.get("sshd_permit_root_login")
    if login_user == "root" and permit_root in ("no", "forced-commands-only"):
        raise ConfigError(source, "sshd_permit_root_login",
                          f"the deploy logs in as root and PermitRootLogin {permit_root} would lock "
                          "it out of the next run",
                          allowed="a non-root ssh_user with sudo, or 'prohibit-password' with a root key")
    if not passwords_disabled(data):
        return
    for user, account in keys.items():
        if account is None:
            raise ConfigError(source, "sshd_key_login_users",
                              f"account {user!r} does not exist on the host",
                              allowed="existing accounts that log in over SSH")
        if account.usable_count() == 0:
            refused = "; ".join(f"{count} {reason}" for reason, count in account.refusals().items())
            raise ConfigError(
                source, "sshd_password_authentication",
                f"account {user!r} has no authorized SSH key sshd would accept for a plain login"
                f"{f' ({refused})' if refused else ''}, so turning password login off would "
                "lock it out",
                allowed=f"add an unrestricted key to ~{user}/.ssh/authorized_keys first, keep "
                "sshd_password_authentication true, or leave the account out of "
                "sshd_key_login_users")


def _flag(data: Mapping[str, Any], key: str, source: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ConfigError(source, key, f"{value!r} is not a boolean", allowed="true or false")
    return value


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _choice(data: Mapping[str, Any], key: str, allowed: Sequence[str], source: str) -> str:
    value = data.get(key)
    if value not in allowed:
        raise ConfigError(source, key, f"{value!r} is not a valid value", allowed=", ".join(allowed))
    return value


def _count(data: Mapping[str, Any], key: str, source: str, minimum: int = 0) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(source, key, f"{value!r} is not a whole number",
                          allowed=f"an integer >= {minimum}")
    return value


def _max_startups(data: Mapping[str, Any], source: str) -> str:
    value = data.get("sshd_max_startups")
    if not isinstance(value, str) or not _MAX_STARTUPS.match(value):
        raise ConfigError(source, "sshd_max_startups", f"{value!r} is not a MaxStartups value",
                          allowed="N or start:rate:full, e.g. '10:30:60'")
    return value


def _algorithms(data: Mapping[str, Any], key: str, source: str) -> str:
    return ",".join(_names(data, key, source))


def _names(data: Mapping[str, Any], key: str, source: str, allow_empty: bool = False) -> list[str]:
    value = data.get(key)
    if not isinstance(value, (list, tuple)) or not (value or allow_empty):
        raise ConfigError(source, key, f"{value!r} is not a list of algorithms",
                          allowed="a list of names" if allow_empty else "a non-empty list of names")
    for name in value:
        if not isinstance(name, str) or not _ALGORITHM.match(name):
            raise ConfigError(source, key, f"{name!r} is not an algorithm name")
        if _AUDIT_FAILURES.search(name):
            raise ConfigError(source, key, f"{name} is rated a failure by ssh-audit",
                              allowed="the defaults in group_data/all.py")
    return list(value)
