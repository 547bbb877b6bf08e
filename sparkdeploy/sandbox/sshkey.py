"""The sandbox's SSH access: a generated ed25519 key and a wait until sshd lets the deploy user in.

The key is made with ``cryptography`` (a pyinfra dependency) and the wait uses paramiko, so no
OpenSSH client is needed on the machine running the sandbox.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sparkdeploy.sandbox.local import SandboxError


def ensure_keypair(private_key: Path) -> str:
    """Create the private key (mode 0600) unless it exists; return the public key line."""
    if not private_key.exists():
        key = Ed25519PrivateKey.generate()
        private_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
    key = serialization.load_ssh_private_key(private_key.read_bytes(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    return public.decode() + " sparkdeploy-sandbox"


def wait_for_ssh(hostname: str, port: int, user: str, private_key: Path, timeout: float) -> None:
    """Return once ``user`` can log in with the key and run a command; raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.MissingHostKeyPolicy())
        try:
            client.connect(hostname, port=port, username=user, key_filename=str(private_key),
                           timeout=5, banner_timeout=5, auth_timeout=5,
                           allow_agent=False, look_for_keys=False)
            _, stdout, _ = client.exec_command("true", timeout=10)
            if stdout.channel.recv_exit_status() == 0:
                return
        except (OSError, paramiko.SSHException) as exc:
            last_error = str(exc) or type(exc).__name__
        finally:
            client.close()
        time.sleep(0.5)
    raise SandboxError(f"SSH to {user}@{hostname}:{port} did not work within {timeout:.0f} s "
                       f"({last_error})")



def run_as_root(data: dict, command: str, timeout: float = 300) -> tuple[int, str, str]:
    """Run ``command`` as root on the sandbox host with inventory ``data``, over a new SSH
    connection (deploys restart sshd between commands); return status, stdout and stderr."""
    with paramiko.SSHClient() as client:
        client.set_missing_host_key_policy(paramiko.MissingHostKeyPolicy())
        client.connect(data["ssh_hostname"], port=data["ssh_port"], username=data["ssh_user"],
                       key_filename=data["ssh_key"], allow_agent=False, look_for_keys=False)
        _, stdout, stderr = client.exec_command("sudo -n sh -c " + shlex.quote(command),
                                                timeout=timeout)
        output, error = stdout.read().decode(), stderr.read().decode()
        return stdout.channel.recv_exit_status(), output, error
