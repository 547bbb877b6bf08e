"""The SSH login pyinfra makes: which account it uses, and proof that a fresh one still works.

The lockout guard must protect the account pyinfra really logs in as, which host data does not
always name: pyinfra's SSH connector takes ``ssh_user``, else the ``User`` that ~/.ssh/config (or
data ``ssh_config_file``) gives the host, else paramiko's default, the local login.
"""

from __future__ import annotations

import getpass
import logging
import time
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

_ATTEMPTS = 3
_RETRY_SECONDS = 5.0


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
        prove. A busy host may be slow to send its banner right after the reload, so a few
        attempts are made before it counts as failed. Never fails itself, so the restore can
        run first."""
        if not isinstance(host.connector, SSHConnector):
            self.error = None
            return True
        for attempt in range(_ATTEMPTS):
            if attempt:
                time.sleep(_RETRY_SECONDS)
            self.error = self._attempt(state, host)
            if self.error is None:
                break
        return True

    @staticmethod
    def _attempt(state: State, host: Host) -> str | None:
        connector = SSHConnector(state, host)
        # paramiko logs a refused login as a traceback; the error below says it in one line
        paramiko_log = logging.getLogger("paramiko")
        level = paramiko_log.level
        paramiko_log.setLevel(logging.CRITICAL)
        try:
            connector.connect()
            succeeded, output = connector.run_shell_command(StringCommand("true"))
            if not succeeded:
                return f"`true` failed: {output.stderr.strip() or 'no output'}"
            return None
        except (ConnectError, SSHException, OSError, EOFError) as error:
            return str(error) or type(error).__name__
        finally:
            paramiko_log.setLevel(level)
            if connector.client is not None:
                connector.client.close()

    def failed(self) -> bool:
        return self.error is not None

    def stop(self, state: State, host: Host) -> bool:
        """Fail this host's deploy with one line saying what happened (no traceback)."""
        logger.error(f"{host.print_prefix}a fresh SSH login as {login_user(host.data, host.name)!r} "
                     f"failed after sshd reloaded the hardened settings ({self.error}); the previous "
                     "settings are back in place. Fix the cause, then deploy again.")
        return False
