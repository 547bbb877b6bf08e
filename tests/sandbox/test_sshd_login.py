"""After hardening, the deploy account still gets in: a fresh login made as pyinfra makes its
own, the deploy's own proof of it, and a hardening that would lock pyinfra out undone."""

from __future__ import annotations

import json
import subprocess

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all

from sparkdeploy import sshd
from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.drift import pyinfra_executable
from sparkdeploy.sandbox.state import HOST_NAME
from sparkdeploy.ssh_login import FreshLogin, login_user

PROOF = "Log in afresh as pyinfra does"


def fresh_login(sandbox_data) -> FreshLogin:
    """A new pyinfra SSH connection to the sandbox, from its inventory data, and ``true`` over it."""
    inventory = Inventory(([(HOST_NAME, sandbox_data)], {}))
    state = State(inventory, Config())
    connect_all(state)
    login = FreshLogin()
    login.check(state, inventory.get_host(HOST_NAME))
    return login


def test_the_first_deploy_proved_a_fresh_login_after_the_reload(converged):
    assert [label for label in converged.changes.get(HOST_NAME, []) if PROOF in label]


def test_a_fresh_login_as_the_deploy_account_works_after_hardening(converged, sandbox_data, on_sandbox):
    assert on_sandbox(f"cat {sshd.DROPIN_PATH}").startswith("# Managed by sparkdeploy")
    login = fresh_login(sandbox_data)
    assert login.error is None
    account = login_user(sandbox_data, HOST_NAME)
    assert on_sandbox(f"id -un {account}").strip() == account


def test_hardening_that_locks_pyinfra_out_is_undone_and_stops_the_deploy(converged, sandbox_data,
                                                                        on_sandbox, deploy):
    before = on_sandbox(f"cat {sshd.DROPIN_PATH}")
    # sshd -t and the lockout guard accept it, but paramiko has no such cipher
    result = subprocess.run(
        [pyinfra_executable(), "inventory.py", "deploy.py", "-y", "--limit", HOST_NAME,
         "--data", f"sshd_ciphers={json.dumps(['chacha20-poly1305@openssh.com'])}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "a fresh SSH login as" in result.stderr and "the previous settings are back" in result.stderr
    assert fresh_login(sandbox_data).error is None
    assert on_sandbox(f"cat {sshd.DROPIN_PATH}") == before
    again = deploy()
    assert again.returncode == 0, again.failure_summary()
