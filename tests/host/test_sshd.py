"""sshd: effective hardened settings, a valid configuration, and the OOM protection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparkdeploy import sshd
from sparkdeploy.facts import SshdKexAlgorithms


@pytest.fixture(scope="module")
def host_kex(host, host_data):
    fact = SshdKexAlgorithms()
    return fact.process(host.check_output(fact.command(host_data["sshd_kex_post_quantum"])).splitlines())


@pytest.fixture(scope="module")
def hardened(host_data, host_kex):
    return sshd.settings(host_data, "host data", host_kex)


@pytest.fixture(scope="module")
def effective(host, host_data):
    user = host_data.get("ssh_user") or host_data["service_user"]
    return sshd.parse_effective_config(
        host.check_output(f"sshd -T -C user={user},host=localhost,addr=127.0.0.1"))


def test_the_configuration_is_valid(host):
    assert host.run("sshd -t").rc == 0


def test_every_hardened_setting_is_in_effect(hardened, effective):
    expected = sshd.effective_expectations(hardened)
    different = {keyword: (value, effective.get(keyword)) for keyword, value in expected.items()
                 if (effective.get(keyword) or "").lower() != value.lower()}
    assert different == {}


def test_passwords_are_off_and_forwarding_is_local_only(effective):
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["permitrootlogin"] == "no"
    assert effective["allowtcpforwarding"] == "local"


def test_the_drop_in_is_private_and_read_before_any_other(host, hardened):
    dropin = host.file(sshd.DROPIN_PATH)
    assert (dropin.user, dropin.group, dropin.mode) == ("root", "root", 0o600)
    keywords = [keyword for keyword, _ in hardened]
    earlier = [path for path in host.check_output("ls /etc/ssh/sshd_config.d/*.conf").split()
               if path < sshd.DROPIN_PATH]
    for path in earlier:  # sshd keeps the first value it reads
        text = host.file(path).content_string.lower()
        assert not [k for k in keywords if f"\n{k.lower()} " in f"\n{text}"], path


def test_the_ssh_unit_asks_for_the_oom_score(host, host_data):
    value = host.check_output("systemctl show ssh -p OOMScoreAdjust --value")
    assert int(value) == host_data["sshd_oom_score_adjust"]


@pytest.mark.requires("host_can_lower_oom_score")
def test_the_listener_has_the_oom_score(host, host_data):
    pid = host.check_output("systemctl show ssh -p MainPID --value")
    assert pid not in ("", "0"), "ssh.service is not running"
    assert int(host.file(f"/proc/{pid}/oom_score_adj").content_string) == host_data["sshd_oom_score_adjust"]


@pytest.mark.requires("host_can_lower_oom_score")
def test_ssh_sessions_inherit_the_oom_score(host, host_data):
    # Documented trade-off: shells started over SSH are as protected as sshd itself.
    session = host.check_output("cat /proc/$PPID/oom_score_adj")
    assert int(session) == host_data["sshd_oom_score_adjust"]


def test_post_quantum_kex_comes_first_as_far_as_sshd_has_it(effective, host_kex):
    assert host_kex, "the host's sshd has no hybrid post-quantum kex (OpenSSH older than 8.5?)"
    offered = effective["kexalgorithms"].split(",")
    assert offered[:len(host_kex)] == host_kex
    assert "curve25519-sha256@libssh.org" in offered  # pyinfra's paramiko logs in with it
    assert not [name for name in offered if name.startswith("diffie-hellman-group-exchange")]


def test_authorized_keys_include_the_cluster_trusts_root_owned_file(effective):
    assert effective["authorizedkeysfile"].split() == list(sshd.AUTHORIZED_KEYS_FILES)


def test_socket_activation_is_left_as_it_was(host):
    state = host.run("systemctl is-enabled ssh.socket").stdout.strip()
    assert state != "masked"


def test_ssh_audit_finds_no_failure_and_warns_only_about_paramikos_kex(host_data):
    ssh_audit = Path(sys.executable).with_name("ssh-audit")
    if not ssh_audit.exists():
        pytest.skip("ssh-audit is not installed (pip install -e '.[test]')")
    target = host_data.get("ssh_hostname") or host_data.get("name")
    port = str(host_data.get("ssh_port") or 22)
    result = subprocess.run([str(ssh_audit), "-j", "-n", "-p", port, target], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 1, result.stdout or result.stderr  # 1: could not connect
    report = json.loads(result.stdout)
    notes = {entry["algorithm"]: entry.get("notes", {}) for section in ("kex", "key", "enc", "mac")
             for entry in report.get(section, [])}
    assert [name for name, note in notes.items() if note.get("fail")] == []
    # only the classic kex kept for pyinfra's paramiko (no post-quantum kex): README, "sshd and pyinfra"
    assert {name for name, note in notes.items() if note.get("warn")} <= set(host_data["sshd_kex_algorithms"])
