"""sshd settings from data, the lockout guard and the drop-in as rendered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from jinja2 import Environment, StrictUndefined

from sparkdeploy import sshd
from sparkdeploy.data import PROJECT_ROOT, documented_defaults
from sparkdeploy.errors import ConfigError

SOURCE = "host 'h' data"


def data(**overrides):
    return {**documented_defaults(), "ssh_user": "llm-agent", **overrides}


def test_defaults_follow_dev_sec_with_local_forwarding_for_the_spark():
    settings = dict(sshd.settings(data(), SOURCE))
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
    settings = dict(sshd.settings(data(sshd_password_authentication=True), SOURCE))
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
        sshd.settings(data(**{key: value}), SOURCE)


@pytest.mark.parametrize(("key", "algorithm"), [
    ("sshd_macs", "hmac-sha1"),
    ("sshd_ciphers", "aes128-cbc"),
    ("sshd_kex_algorithms", "ecdh-sha2-nistp256"),
    ("sshd_kex_algorithms", "diffie-hellman-group14-sha1"),
    ("sshd_host_key_algorithms", "ssh-rsa"),
])
def test_algorithms_ssh_audit_fails_are_refused(key, algorithm):
    with pytest.raises(ConfigError, match="ssh-audit"):
        sshd.settings(data(**{key: [algorithm]}), SOURCE)


def test_default_crypto_lists_pass_the_audit_filter():
    defaults = documented_defaults()
    for key in ("sshd_kex_algorithms", "sshd_ciphers", "sshd_macs", "sshd_host_key_algorithms"):
        assert sshd._algorithms(defaults, key, SOURCE) == ",".join(defaults[key])


def test_effective_expectations_use_sshd_T_keywords():
    expected = sshd.effective_expectations(sshd.settings(data(), SOURCE))
    assert expected["allowtcpforwarding"] == "local"
    assert expected["kbdinteractiveauthentication"] == "no"
    assert expected["logingracetime"] == "30"


def test_sshd_T_output_is_parsed_first_value_wins():
    parsed = sshd.parse_effective_config("port 22\nPermitRootLogin no\nhostkey /a\nhostkey /b\n")
    assert parsed == {"port": "22", "permitrootlogin": "no", "hostkey": "/a"}


def test_key_login_users_default_to_deploy_and_service_accounts():
    assert sshd.key_login_users(data(), SOURCE) == ["llm-agent", "cluster"]
    assert sshd.key_login_users(data(ssh_user="cluster"), SOURCE) == ["cluster"]
    assert sshd.key_login_users(data(ssh_user=None), SOURCE) == ["cluster"]
    assert sshd.key_login_users(data(sshd_key_login_users=["ops"]), SOURCE) == ["ops"]


def test_key_login_users_must_be_account_names():
    with pytest.raises(ConfigError, match="sshd_key_login_users"):
        sshd.key_login_users(data(sshd_key_login_users=["bad user"]), SOURCE)


def test_turning_passwords_off_for_an_account_without_a_key_is_refused():
    with pytest.raises(ConfigError, match="'cluster' has no authorized SSH key") as error:
        sshd.check_lockout(data(), {"llm-agent": 1, "cluster": 0}, SOURCE)
    assert "sshd_password_authentication" in str(error.value)


def test_missing_account_is_refused():
    with pytest.raises(ConfigError, match="does not exist"):
        sshd.check_lockout(data(), {"llm-agent": None}, SOURCE)


def test_accounts_with_keys_pass_and_passwords_on_skip_the_check():
    sshd.check_lockout(data(), {"llm-agent": 2, "cluster": 1}, SOURCE)
    sshd.check_lockout(data(sshd_password_authentication=True), {"cluster": 0}, SOURCE)


def test_a_root_deploy_account_may_not_forbid_root_login():
    with pytest.raises(ConfigError, match="sshd_permit_root_login"):
        sshd.check_lockout(data(ssh_user="root"), {"root": 1}, SOURCE)
    sshd.check_lockout(data(ssh_user="root", sshd_permit_root_login="prohibit-password"),
                       {"root": 1}, SOURCE)


@pytest.mark.parametrize("value", [-1001, 1001, "low", True])
def test_oom_score_adjust_range(value):
    with pytest.raises(ConfigError, match="sshd_oom_score_adjust"):
        sshd.oom_score_adjust(data(sshd_oom_score_adjust=value), SOURCE)


def test_dropin_renders_one_line_per_setting():
    template = (PROJECT_ROOT / "templates/etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf.j2")
    settings = sshd.settings(data(), SOURCE)
    text = Environment(undefined=StrictUndefined, keep_trailing_newline=True).from_string(
        template.read_text()).render(settings=settings)
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == [f"{keyword} {value}" for keyword, value in settings]
    assert text.endswith("\n")


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
