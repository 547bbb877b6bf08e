"""The SSH login pyinfra makes: which account it uses, and proof that a fresh one still works.

The lockout guard must protect the account pyinfra really logs in as, which host data does not
always name: pyinfra's SSH connector takes ``ssh_user``, else the ``User`` that ~/.ssh/config (or
data ``ssh_config_file``) gives the host, else paramiko's default, the local login.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Mapping
from typing import Any

from paramiko import SSHException
from pyinfra import logger
from pyinfra.api import State
from pyinfra.api.command import StringCommand
from pyinfra.api.exceptions import ConnectError
from pyinfra.api.host import Host
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.sshuserclient.client import get_ssh_config


def login_user(data: Mapping[str, Any], host_name: str) -> str:
    """The account pyinfra's SSH connector logs in as, resolved as it resolves it."""
    user = data.get("ssh_user")
    if user:
        return user
    config = get_ssh_config(data.get("ssh_config_file"))
    if config:
        user = config.lookup(data.get("ssh_hostname") or host_name).get("user")
        if user:
            return user
    return getpass.getuser()


class FreshLogin:
    """A new SSH connection made exactly as pyinfra makes its own (same data: user, key, port,
    ssh config, known hosts), after sshd reloaded new settings. Its outcome gates the restore
    of the previous settings and the stop of the host's deploy (``_if=fresh_login.failed``)."""

    def __init__(self) -> None:
        self.error: str | None = None

    def check(self, state: State, host: Host) -> bool:
        """Log in afresh and run ``true``; hosts pyinfra does not reach over SSH have nothing to
        prove. Never fails itself, so the restore can run first."""
        self.error = None
        if not isinstance(host.connector, SSHConnector):
            return True
        connector = SSHConnector(state, host)
        # paramiko logs a refused login as a traceback; the error below says it in one line
        paramiko_log = logging.getLogger("paramiko")
        level = paramiko_log.level
        paramiko_log.setLevel(logging.CRITICAL)
        try:
            connector.connect()
            succeeded, output = connector.run_shell_command(StringCommand("true"))
            if not succeeded:
                self.error = f"`true` failed: {output.stderr.strip() or 'no output'}"
        except (ConnectError, SSHException, OSError, EOFError) as error:
            self.error = str(error) or type(error).__name__
        finally:
            paramiko_log.setLevel(level)
            if connector.client is not None:
                connector.client.close()
        return True

    def failed(self) -> bool:
        return self.error is not None

    def stop(self, state: State, host: Host) -> bool:
        """Fail this host's deploy with one line saying what happened (no traceback)."""
        logger.error(f"{host.print_prefix}a fresh SSH login as {login_user(host.data, host.name)!r} "
                     f"failed after sshd reloaded the hardened settings ({self.error}); the previous "
                     "settings are back in place. Fix the cause, then deploy again.")
        return False
