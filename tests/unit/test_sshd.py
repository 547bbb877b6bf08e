"""sshd settings from data, the lockout guard and the drop-in as rendered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from jinja2 import Environment, StrictUndefined

from sparkdeploy import sshd
from sparkdeploy.cluster_trust import AUTHORIZED_KEYS_DIR
from sparkdeploy.data import PROJECT_ROOT, documented_defaults
from sparkdeploy.errors import ConfigError
from sparkdeploy.ssh_keys import AccountKeys, KeyFile

SOURCE = "host 'h' data"
# What `sshd -T` accepts as KexAlgorithms on Ubuntu 24.04 (OpenSSH 9.6): no ML-KEM yet.
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl op@ws"
NOBLE_KEX = ("sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "curve25519-sha256@libssh.org")


def data(**overrides):
    return {**documented_defaults(), "ssh_user": "llm-agent", **overrides}


def hardened(values=None, host_kex=NOBLE_KEX):
    return sshd.settings(values or data(), SOURCE, host_kex)


def test_defaults_follow_dev_sec_with_local_forwarding_for_the_spark():
    settings = dict(hardened())
    assert settings["PermitRootLogin"] == "no"
    assert settings["PasswordAuthentication"] == "no"
    assert settings["KbdInteractiveAuthentication"] == "no"
    assert settings["AuthenticationMethods"] == "publickey"
    assert settings["AllowTcpForwarding"] == "local"
    assert settings["X11Forwarding"] == "no"
    assert settings["MaxAuthTries"] == "2"
    assert settings["LogLevel"] == "VERBOSE"
    assert settings["MACs"] == ("hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
                                "umac-128-etm@openssh.com")
    assert "nistp" not in settings["HostKeyAlgorithms"]


def test_password_login_kept_on_allows_any_method():
    settings = dict(hardened(data(sshd_password_authentication=True)))
    assert settings["PasswordAuthentication"] == "yes"
    assert settings["AuthenticationMethods"] == "any"


@pytest.mark.parametrize(("key", "value"), [
    ("sshd_permit_root_login", "sometimes"),
    ("sshd_allow_tcp_forwarding", "everything"),
    ("sshd_password_authentication", "no"),
    ("sshd_max_auth_tries", 0),
    ("sshd_max_startups", "ten"),
    ("sshd_log_level", "LOUD"),
    ("sshd_macs", []),
])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        hardened(data(**{key: value}))


@pytest.mark.parametrize(("key", "algorithm"), [
    ("sshd_macs", "hmac-sha1"),
    ("sshd_ciphers", "aes128-cbc"),
    ("sshd_kex_algorithms", "ecdh-sha2-nistp256"),
    ("sshd_kex_algorithms", "diffie-hellman-group14-sha1"),
    ("sshd_host_key_algorithms", "ssh-rsa"),
])
def test_algorithms_ssh_audit_fails_are_refused(key, algorithm):
    with pytest.raises(ConfigError, match="ssh-audit"):
        hardened(data(**{key: [algorithm]}))


def test_default_crypto_lists_pass_the_audit_filter():
    defaults = documented_defaults()
    for key in ("sshd_kex_algorithms", "sshd_ciphers", "sshd_macs", "sshd_host_key_algorithms"):
        assert sshd._algorithms(defaults, key, SOURCE) == ",".join(defaults[key])


def test_effective_expectations_use_sshd_T_keywords():
    expected = sshd.effective_expectations(hardened())
    assert expected["allowtcpforwarding"] == "local"
    assert expected["kbdinteractiveauthentication"] == "no"
    assert expected["logingracetime"] == "30"


def test_sshd_T_output_is_parsed_first_value_wins():
    parsed = sshd.parse_effective_config("port 22\nPermitRootLogin no\nhostkey /a\nhostkey /b\n")
    assert parsed == {"port": "22", "permitrootlogin": "no", "hostkey": "/a"}


def test_key_login_users_start_with_the_account_pyinfra_logs_in_as():
    assert sshd.key_login_users(data(), SOURCE, "llm-agent") == ["llm-agent", "cluster"]
    assert sshd.key_login_users(data(), SOURCE, "cluster") == ["cluster"]
    # data's ssh_user unset: the account resolved from ~/.ssh/config or the local login
    assert sshd.key_login_users(data(ssh_user=None), SOURCE, "ops") == ["ops", "cluster"]
    assert sshd.key_login_users(data(sshd_key_login_users=["admin"]), SOURCE, "ops") == ["ops", "admin"]


def test_key_login_users_must_be_account_names():
    with pytest.raises(ConfigError, match="sshd_key_login_users"):
        sshd.key_login_users(data(sshd_key_login_users=["bad user"]), SOURCE, "llm-agent")


def account(*lines, path="/home/u/.ssh/authorized_keys", mode="600"):
    return AccountKeys(1000, "/home/u", None, 1024,
                       (KeyFile(path, ((1000, mode), (1000, "700"), (1000, "750")), lines),))


def test_turning_passwords_off_for_an_account_without_a_key_is_refused():
    with pytest.raises(ConfigError, match="'cluster' has no authorized SSH key") as error:
        sshd.check_lockout(data(), "llm-agent", {"llm-agent": account(ED25519), "cluster": account()},
                           SOURCE)
    assert "sshd_password_authentication" in str(error.value)


def test_restricted_keys_do_not_count():
    cluster_line = f'restrict,from="192.168.100.1",command="sudo -n /usr/local/bin/x" {ED25519}'
    with pytest.raises(ConfigError, match="'llm-agent' has no authorized SSH key") as error:
        sshd.check_lockout(data(), "llm-agent", {"llm-agent": account(
            cluster_line, f'command="/bin/true" {ED25519}')}, SOURCE)
    assert "(1 restricted (command, from, restrict); 1 restricted (command))" in str(error.value)


def test_keys_in_a_file_strict_modes_ignores_do_not_count():
    with pytest.raises(ConfigError, match="StrictModes"):
        sshd.check_lockout(data(), "llm-agent", {"llm-agent": account(ED25519, mode="664")}, SOURCE)


def test_missing_account_is_refused():
    with pytest.raises(ConfigError, match="does not exist"):
        sshd.check_lockout(data(), "llm-agent", {"llm-agent": None}, SOURCE)


def test_accounts_with_keys_pass_and_passwords_on_skip_the_check():
    sshd.check_lockout(data(), "llm-agent", {"llm-agent": account(ED25519), "cluster": account(ED25519)},
                       SOURCE)
    sshd.check_lockout(data(sshd_password_authentication=True), "llm-agent", {"cluster": account()}, SOURCE)


def test_a_root_deploy_account_may_not_forbid_root_login():
    with pytest.raises(ConfigError, match="sshd_permit_root_login"):
        sshd.check_lockout(data(ssh_user=None), "root", {"root": account(ED25519)}, SOURCE)
    sshd.check_lockout(data(sshd_permit_root_login="prohibit-password"), "root",
                       {"root": account(ED25519)}, SOURCE)


def test_authorized_keys_files_add_the_cluster_trusts_root_owned_file():
    assert dict(hardened())["AuthorizedKeysFile"] == (
        f".ssh/authorized_keys .ssh/authorized_keys2 {AUTHORIZED_KEYS_DIR}/%u")


def test_post_quantum_kex_first_as_far_as_the_hosts_sshd_has_them():
    openssh_9_9 = ("mlkem768x25519-sha256", *NOBLE_KEX)
    assert dict(hardened(host_kex=openssh_9_9))["KexAlgorithms"] == (
        "mlkem768x25519-sha256,sntrup761x25519-sha512@openssh.com,"
        "curve25519-sha256,curve25519-sha256@libssh.org")
    assert dict(hardened())["KexAlgorithms"] == (
        "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org")
    assert dict(hardened(host_kex=()))["KexAlgorithms"] == "curve25519-sha256,curve25519-sha256@libssh.org"


def test_the_2048_bit_group_exchange_is_not_offered():
    assert "diffie-hellman-group-exchange" not in dict(hardened())["KexAlgorithms"]


def test_a_kex_list_pyinfra_cannot_log_in_with_is_refused():
    with pytest.raises(ConfigError, match="paramiko") as error:
        hardened(data(sshd_kex_algorithms=["curve25519-sha256"]))
    assert "curve25519-sha256@libssh.org" in str(error.value)


def test_install_checks_with_sshd_t_in_the_same_command_and_keeps_the_previous_dropin():
    command = sshd.install_command()
    steps = command.split(" && ")
    check = steps.index(f"sshd -t -f {sshd.TEST_CONFIG_PATH}")
    keep = next(i for i, step in enumerate(steps) if f"cp -p {sshd.DROPIN_PATH} {sshd.PREVIOUS_PATH}" in step)
    install = next(i for i, step in enumerate(steps) if step.startswith(f"mv -f {sshd.DROPIN_PATH}.")
                   and step.endswith(f" {sshd.DROPIN_PATH}"))
    assert check < keep < install


@pytest.mark.parametrize("value", [-1001, 1001, "low", True])
def test_oom_score_adjust_range(value):
    with pytest.raises(ConfigError, match="sshd_oom_score_adjust"):
        sshd.oom_score_adjust(data(sshd_oom_score_adjust=value), SOURCE)


def test_dropin_renders_one_line_per_setting():
    template = (PROJECT_ROOT / "templates/etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf.j2")
    pairs = hardened()
    text = Environment(undefined=StrictUndefined, keep_trailing_newline=True).from_string(
        template.read_text()).render(settings=pairs)
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == [f"{keyword} {value}" for keyword, value in pairs]
    assert text.endswith("\n")
    assert sshd.render_dropin(pairs) == text


def test_ssh_audit_rates_no_default_algorithm_a_failure():
    ssh_audit = Path(sys.executable).with_name("ssh-audit")
    if not ssh_audit.exists():
        pytest.skip("ssh-audit is not installed (pip install -e '.[test]')")
    defaults = documented_defaults()
    names = [name for key in ("sshd_kex_algorithms", "sshd_ciphers", "sshd_macs",
                              "sshd_host_key_algorithms") for name in defaults[key]]
    result = subprocess.run([str(ssh_audit), "--lookup", ",".join(names)], capture_output=True,
                            text=True, timeout=60)
    assert "[fail]" not in result.stdout
    assert result.returncode in (0, 2), result.stdout  # 2: warnings (no post-quantum on classic KEX)
    for name in names:
        assert name in result.stdout  # every name is known to ssh-audit
