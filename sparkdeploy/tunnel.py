"""Local port forwarding over SSH, for checks that must reach ports only the host itself sees
(and a command run over the same connection, for what only the host can see).

``sparkdeploy verify`` speaks plain HTTP to vLLM and the proxy. When their ports are not
reachable from the workstation (the sandbox container, a firewalled Spark), it forwards a local
port through the same SSH connection values pyinfra uses (``ssh_hostname``, ``ssh_port``,
``ssh_user``, ``ssh_key``), like ``ssh -L``. sshd must allow local forwarding (the hardened
sshd keeps ``AllowTcpForwarding local``).
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import paramiko

_CHUNK = 65536


class SshTunnel:
    """An SSH connection to a host that forwards local ports to addresses the host can reach."""

    def __init__(self, host_name: str, data: Mapping[str, Any], timeout: float = 15.0) -> None:
        self._client = paramiko.SSHClient()
        self._client.set_missing_host_key_policy(_policy(data))
        known_hosts = data.get("ssh_known_hosts_file")
        if known_hosts and known_hosts != "/dev/null":
            self._client.load_host_keys(known_hosts)
        else:
            self._client.load_system_host_keys()
        self._client.connect(
            hostname=data.get("ssh_hostname") or host_name,
            port=int(data.get("ssh_port") or 22),
            username=data.get("ssh_user"),
            key_filename=data.get("ssh_key"),
            timeout=timeout,
        )
        self._servers: list[socket.socket] = []
        self._closed = threading.Event()

    def forward(self, remote_host: str, remote_port: int) -> int:
        """Listen on a free local port forwarding to ``remote_host:remote_port``; return the port."""
        server = socket.create_server(("127.0.0.1", 0))
        self._servers.append(server)
        threading.Thread(target=self._accept, args=(server, remote_host, remote_port),
                         daemon=True).start()
        return server.getsockname()[1]

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run ``command`` on the host over the same connection; its exit status and output."""
        _, stdout, stderr = self._client.exec_command(command, timeout=timeout)
        output = stdout.read().decode(errors="replace") + stderr.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), output

    def close(self) -> None:
        self._closed.set()
        for server in self._servers:
            server.close()
        self._client.close()

    def __enter__(self) -> SshTunnel:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _accept(self, server: socket.socket, remote_host: str, remote_port: int) -> None:
        while not self._closed.is_set():
            try:
                local, peer = server.accept()
            except OSError:
                return
            transport = self._client.get_transport()
            try:
                channel = transport.open_channel("direct-tcpip", (remote_host, remote_port), peer)
            except (paramiko.SSHException, AttributeError):
                local.close()
                continue
            threading.Thread(target=_pump, args=(local, channel), daemon=True).start()


def _pump(local: socket.socket, channel: paramiko.Channel) -> None:
    """Copy bytes both ways until either side closes."""
    try:
        while True:
            readable, _, _ = select.select([local, channel], [], [])
            if local in readable:
                data = local.recv(_CHUNK)
                if not data:
                    break
                channel.sendall(data)
            if channel in readable:
                data = channel.recv(_CHUNK)
                if not data:
                    break
                local.sendall(data)
    except OSError:
        pass
    finally:
        channel.close()
        local.close()


def _policy(data: Mapping[str, Any]) -> paramiko.MissingHostKeyPolicy:
    """pyinfra's meaning of ``ssh_strict_host_key_checking``: "no"/"off" accept unknown keys."""
    strict = str(data.get("ssh_strict_host_key_checking", "accept-new")).lower()
    if strict in ("no", "off", "accept-new"):
        return paramiko.AutoAddPolicy()
    return paramiko.RejectPolicy()
