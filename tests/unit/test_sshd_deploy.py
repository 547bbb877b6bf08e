"""The sshd task on a fake host (pyinfra's @fake connector): the account the lockout guard
protects, which keys count, where sshd -t runs, the fresh login after the reload, the kex offered."""

from __future__ import annotations

import json
import os
import subprocess
from hashlib import sha1
from pathlib import Path

from test_host_tasks_prepare import ED25519, PYINFRA, READY_HOST, authorized_keys, plan

from sparkdeploy import sshd
from sparkdeploy.cluster_trust import AUTHORIZED_KEYS_DIR
from sparkdeploy.data import PROJECT_ROOT, documented_defaults

TASK = "tasks.sshd.sshd_hardening"
CLUSTER_LINE = f'restrict,from="192.168.100.1",command="sudo -n /usr/local/lib/x \\"$X\\"" {ED25519}'
LIVE_STAT = "(test -e /etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf ||"
LIVE_SHA1 = "test -e /etc/ssh/sshd_config.d/00-sparkdeploy-hardening.conf && ( sha1sum"


def planned(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [operation["name"].split(" | ", 1)[1] for operation in json.loads(result.stdout)["plan"]]


def converged_host() -> dict:
    """A host whose live drop-in is already the hardened one (root:root 0600)."""
    dropin = sshd.render_dropin(sshd.settings(documented_defaults(), "test", [READY_HOST["KexAlgorithms="]]))
    return {LIVE_SHA1: f"{sha1(dropin.encode()).hexdigest()}  {sshd.DROPIN_PATH}",
            LIVE_STAT: f"user=root group=root mode=-rw------- atime=0 mtime=0 ctime=0 size=1 "
                       f"'{sshd.DROPIN_PATH}'",
            **READY_HOST}


def test_keys_restricted_by_the_cluster_trust_do_not_count():
    keys = authorized_keys(CLUSTER_LINE, path=f"{AUTHORIZED_KEYS_DIR}/llm-agent")
    result = plan(TASK, {**READY_HOST, "getent passwd": keys})
    assert result.returncode == 1
    assert "account 'llm-agent' has no authorized SSH key" in result.stderr
    assert "1 restricted (command, from, restrict)" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_ssh_user_the_guard_protects_the_ssh_config_user(tmp_path):
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host spark.lan\n    User ops\n")
    responses = {"getent passwd ops": authorized_keys(), **READY_HOST}
    result = plan(TASK, responses, "ssh_user=", f"ssh_config_file={ssh_config}", "ssh_hostname=spark.lan")
    assert result.returncode == 1
    assert "account 'ops' has no authorized SSH key" in result.stderr


def test_a_root_login_from_ssh_config_with_root_login_off_stops_the_run(tmp_path):
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host spark.lan\n    User root\n")
    result = plan(TASK, READY_HOST, "ssh_user=", f"ssh_config_file={ssh_config}", "ssh_hostname=spark.lan")
    assert result.returncode == 1
    assert "the deploy logs in as root and PermitRootLogin no" in result.stderr


def test_sshd_t_runs_in_the_install_and_a_fresh_login_follows_the_reload():
    names = planned(plan(TASK, READY_HOST))
    order = ["Stage the hardened sshd settings",
             "Check the staged settings with sshd -t and install them (the previous ones kept)",
             "Reload sshd if it is running (sessions stay open)",
             "Log in afresh as pyinfra does (llm-agent), before the deploy goes on",
             "Put the previous sshd settings back: the fresh login failed",
             "Stop this host's deploy: the hardened settings locked pyinfra out"]
    assert [name for name in names if name in order] == order
    assert names.index(order[-1]) < names.index("Keep sshd out of the OOM killer's reach")


def test_a_converged_host_neither_installs_nor_reloads():
    names = planned(plan(TASK, converged_host()))
    assert "Stage the hardened sshd settings" in names
    assert not [name for name in names if "install" in name or "Reload" in name or "afresh" in name]


def test_a_live_dropin_with_the_wrong_mode_is_reinstalled():
    host = converged_host()
    host[LIVE_STAT] = host[LIVE_STAT].replace("-rw-------", "-rw-r--r--")
    assert "Check the staged settings with sshd -t and install them (the previous ones kept)" in planned(
        plan(TASK, host))


def test_the_kex_offered_follows_what_the_hosts_sshd_has(tmp_path):
    """The drop-in as the deploy uploads it: post-quantum first, as far as the host's sshd has them."""
    for host_kex, expected in (
            (["mlkem768x25519-sha256", "sntrup761x25519-sha512@openssh.com"],
             "mlkem768x25519-sha256,sntrup761x25519-sha512@openssh.com,"),
            ([], "")):
        out = tmp_path / str(len(host_kex))
        applied(out, {**READY_HOST, "KexAlgorithms=": host_kex})
        dropin = (out / "files" / sshd.CANDIDATE_PATH.lstrip("/")).read_text()
        assert f"\nKexAlgorithms {expected}curve25519-sha256,curve25519-sha256@libssh.org\n" in dropin
        assert "diffie-hellman-group-exchange" not in dropin


def test_applied_on_a_fresh_host_sshd_t_checks_right_before_the_install(tmp_path):
    commands = applied(tmp_path, READY_HOST)
    install = next(command for command in commands if f"mv -f {sshd.DROPIN_PATH}." in command)
    assert install.index(f"sshd -t -f {sshd.TEST_CONFIG_PATH}") < install.index("install -o root")
    assert any("systemctl reload ssh.service" in command for command in commands[commands.index(install):])
    # the fake host is no SSH login: nothing to prove, so nothing is put back
    assert not [command for command in commands if f"cp -p {sshd.PREVIOUS_PATH}" in command]


def applied(out: Path, responses: dict) -> list[str]:
    """Apply the sshd task on @fake; return the commands it ran, its uploads under ``out/files``."""
    out.mkdir(parents=True, exist_ok=True)
    responses = {"systemctl show": ["Id=ssh.service", "SubState=running"], **responses}
    result = subprocess.run(
        [PYINFRA, "@fake/spark", str(Path(__file__).with_name("capture_deploy.py")), "-y",
         "--data", f"fake_responses={json.dumps(responses)}", "--data", "ssh_user=llm-agent"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYINFRA_FAKE_DELAY": "0", "SPARKDEPLOY_CAPTURE": str(out),
             "SPARKDEPLOY_CAPTURE_TASK": TASK, "PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in (out / "commands").read_text().splitlines()]
