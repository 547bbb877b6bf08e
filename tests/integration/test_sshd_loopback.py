"""The hardened sshd settings on a real sshd (Debian's, on a loopback high port, as root, with a
temporary host key): pyinfra's own SSH connector logs in through them, OpenSSH clients get a
post-quantum key exchange, ssh-audit finds no failure and only the documented warnings, the
lockout guard counts exactly the keys sshd lets in, and a fresh login that fails after a reload
puts the previous drop-in back. The commands are the deploy's own (sparkdeploy.sshd), aimed at
the loopback sshd's files instead of /etc/ssh.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from loopback_servers import free_port, stop
from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import StringCommand
from pyinfra.api.connect import connect_all

from sparkdeploy import sshd
from sparkdeploy.cluster_trust import authorized_line
from sparkdeploy.data import documented_defaults
from sparkdeploy.facts import SshdKexAlgorithms
from sparkdeploy.ssh_keys import AuthorizedKeys, key_problem
from sparkdeploy.ssh_login import FreshLogin

SSHD = "/usr/sbin/sshd"


@dataclass
class LoopbackSshd:
    directory: Path
    port: int
    process: subprocess.Popen
    client_key: Path
    host_kex: list[str]

    @property
    def live(self) -> Path:
        return self.directory / "sshd_config.d" / "00-sparkdeploy-hardening.conf"

    def reload(self) -> str:
        return f"kill -HUP {self.process.pid}"

    def wait_for_reload(self) -> None:
        """sshd re-executes itself on SIGHUP; wait until it listens again."""
        time.sleep(0.5)
        _wait_for_port(self.port, self.process)

    def login(self, key: Path, command: str = "true") -> subprocess.CompletedProcess:
        """An OpenSSH client login with exactly this key (-vv shows the negotiated kex)."""
        return subprocess.run(
            ["ssh", "-vv", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes",
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", f"UserKnownHostsFile={self.directory / 'known_hosts'}", "-p", str(self.port),
             "root@127.0.0.1", command], capture_output=True, text=True, timeout=30)


def hardened_dropin(host_kex: list[str], **overrides) -> str:
    data = {**documented_defaults(), **overrides}
    return sshd.render_dropin(sshd.settings(data, "test data", host_kex))


@pytest.fixture(scope="module")
def loopback_sshd() -> Iterator[LoopbackSshd]:
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.fail(f"needs root and {SSHD} (scripts/host-packages installs openssh-server)")
    # StrictModes checks every directory up to /: /tmp (1777) would make sshd ignore the keys.
    directory = Path(tempfile.mkdtemp(prefix="sparkdeploy-sshd-", dir=Path.home()))
    (directory / "sshd_config.d").mkdir()
    (directory / "keys").mkdir(mode=0o700)
    for name in ("host_ed25519", "client_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)],
                       check=True)
    # sshd (even sshd -T, which the kex fact runs) refuses to run without its privilege
    # separation directory, which only a running sshd service leaves behind on a fresh boot
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_kex = _run_fact(SshdKexAlgorithms().command(documented_defaults()["sshd_kex_post_quantum"]))
    port = free_port()
    # Test-only values first (sshd keeps the first): where to listen, the temporary host key, the
    # key files, root login by key; then the hardened drop-in, as /etc/ssh/sshd_config includes it.
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory}/host_ed25519\n"
        f"PidFile {directory}/sshd.pid\nAuthorizedKeysFile {directory}/keys/%u {directory}/keys/%u.shared\n"
        f"PermitRootLogin prohibit-password\nInclude {directory}/sshd_config.d/*.conf\n")
    sshd_state = LoopbackSshd(directory, port, None, directory / "client_ed25519", host_kex)  # type: ignore[arg-type]
    sshd_state.live.write_text(hardened_dropin(host_kex))
    sshd_state.live.chmod(0o600)
    _authorize(directory / "keys" / "root", _public(directory / "client_ed25519"))
    log = open(directory / "sshd.log", "w")  # noqa: SIM115 (closed below)
    sshd_state.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(directory / "sshd_config")],
                                          stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, sshd_state.process)
        yield sshd_state
    finally:
        stop(sshd_state.process)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def pyinfra_host(loopback: LoopbackSshd, key: Path):
    """A pyinfra state and host reaching the loopback sshd as the CLI would (SSH connector)."""
    data = {"ssh_hostname": "127.0.0.1", "ssh_port": loopback.port, "ssh_user": "root",
            "ssh_key": str(key), "ssh_known_hosts_file": str(loopback.directory / "known_hosts"),
            "ssh_strict_host_key_checking": "accept-new"}
    inventory = Inventory(([("loopback", data)], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("loopback")
    assert host.connected, "pyinfra could not connect to the loopback sshd"
    return state, host


def test_the_hosts_sshd_is_asked_which_post_quantum_kex_it_has(loopback_sshd):
    version = subprocess.run([SSHD, "-V"], capture_output=True, text=True).stderr
    assert "sntrup761x25519-sha512@openssh.com" in loopback_sshd.host_kex, version  # OpenSSH >= 8.5
    assert loopback_sshd.host_kex == [name for name in documented_defaults()["sshd_kex_post_quantum"]
                                      if name in _run_fact(SshdKexAlgorithms().command([name]))]


def test_pyinfra_logs_in_afresh_through_the_hardened_settings(loopback_sshd):
    state, host = pyinfra_host(loopback_sshd, loopback_sshd.client_key)
    login = FreshLogin()
    login.check(state, host)
    assert login.error is None


def test_openssh_clients_get_the_post_quantum_kex(loopback_sshd):
    result = loopback_sshd.login(loopback_sshd.client_key)
    assert result.returncode == 0, result.stderr[-3000:]
    client_kex = subprocess.run(["ssh", "-Q", "kex"], capture_output=True, text=True).stdout.split()
    expected = next(name for name in loopback_sshd.host_kex if name in client_kex)
    assert f"kex: algorithm: {expected}" in result.stderr


def test_ssh_audit_finds_no_failure_and_warns_only_about_paramikos_kex(loopback_sshd):
    ssh_audit = Path(sys.executable).with_name("ssh-audit")
    result = subprocess.run([str(ssh_audit), "-j", "--skip-rate-test", "-p", str(loopback_sshd.port),
                             "127.0.0.1"], capture_output=True, text=True, timeout=120)
    report = json.loads(result.stdout)
    notes = {(section, entry["algorithm"]): entry.get("notes", {})
             for section in ("kex", "key", "enc", "mac") for entry in report.get(section, [])}
    assert [name for name, note in notes.items() if note.get("fail")] == []
    warned = {name for (section, name), note in notes.items() if note.get("warn")}
    # only the classic kex kept for pyinfra's paramiko (no post-quantum kex): README, "sshd and pyinfra"
    assert warned == set(documented_defaults()["sshd_kex_algorithms"])
    assert ("kex", "diffie-hellman-group-exchange-sha256") not in notes


def test_the_lockout_guard_counts_exactly_the_keys_sshd_lets_in(loopback_sshd):
    keys = loopback_sshd.directory / "keys"
    made = {name: _keypair(loopback_sshd.directory, name) for name in
            ("plain", "from_elsewhere", "forced", "cluster", "shared_file")}
    lines = {"plain": _public(made["plain"]),
             "from_elsewhere": f'from="192.0.2.7" {_public(made["from_elsewhere"])}',
             "forced": f'command="echo forced" {_public(made["forced"])}',
             "cluster": authorized_line(_cluster(), _public(made["cluster"])).strip()}
    original = (keys / "root").read_text()
    try:
        (keys / "root").write_text(original + "".join(f"{line}\n" for line in lines.values()))
        _authorize(keys / "root.shared", _public(made["shared_file"]), mode=0o646)  # StrictModes
        files = (str(keys / "%u"), str(keys / "%u.shared"))
        account = AuthorizedKeys().process(_run_fact(AuthorizedKeys().command("root", files)))
        counted = {line for key_file in account.files for line in key_file.lines
                   if key_file.path.endswith("root") and not key_problem(
                       line, account.accepted_algorithms, account.required_rsa_bits)}
        assert account.usable_count() == 2  # the fixture's client key and "plain"
        assert counted == {original.strip(), lines["plain"]}
        for name, key in made.items():
            result = loopback_sshd.login(key, "echo shell")
            got_a_shell = result.returncode == 0 and result.stdout.strip() == "shell"
            assert got_a_shell == (name == "plain"), (name, result.stdout, result.stderr[-1500:])
    finally:
        (keys / "root").write_text(original)
        (keys / "root.shared").unlink(missing_ok=True)


def test_a_failed_fresh_login_puts_the_previous_settings_back(loopback_sshd, caplog):
    directory, live = loopback_sshd.directory, loopback_sshd.live
    good = live.read_text()
    candidate, previous = directory / "candidate.conf", directory / "previous.conf"
    test_config = directory / "sshd_config.test"
    test_config.write_text(f"Include {candidate}\nInclude {directory}/sshd_config\n")
    state, host = pyinfra_host(loopback_sshd, loopback_sshd.client_key)  # the deploy's own connection
    # Valid for sshd -t and the guard, yet paramiko cannot log in: no cipher it speaks.
    candidate.write_text(hardened_dropin(loopback_sshd.host_kex,
                                         sshd_ciphers=["chacha20-poly1305@openssh.com"]))
    install = sshd.install_command(str(test_config), str(candidate), str(live), str(previous))
    subprocess.run(["sh", "-c", install], check=True)
    assert live.read_text() == candidate.read_text() and previous.read_text() == good
    assert oct(live.stat().st_mode & 0o777) == "0o600"
    subprocess.run(["sh", "-c", loopback_sshd.reload()], check=True)
    loopback_sshd.wait_for_reload()

    login = FreshLogin()
    caplog.clear()
    login.check(state, host)
    assert login.failed(), "paramiko logged in without a cipher it speaks"
    assert "no acceptable ciphers" in login.error
    assert not [record for record in caplog.records if record.name.startswith("paramiko")]  # one line
    succeeded, _ = host.run_shell_command(StringCommand("true"))
    assert succeeded  # the deploy's own connection outlives the reload: the restore runs over it

    restore = sshd.restore_command(str(live), str(previous), reload=loopback_sshd.reload())
    subprocess.run(["sh", "-c", restore], check=True)
    loopback_sshd.wait_for_reload()
    assert live.read_text() == good
    login.check(state, host)
    assert login.error is None


def test_an_invalid_candidate_is_never_installed(loopback_sshd):
    directory, live = loopback_sshd.directory, loopback_sshd.live
    good = live.read_text()
    candidate = directory / "candidate.conf"
    test_config = directory / "sshd_config.test"
    test_config.write_text(f"Include {candidate}\nInclude {directory}/sshd_config\n")
    candidate.write_text(good + "NoSuchKeyword yes\n")
    install = sshd.install_command(str(test_config), str(candidate), str(live),
                                   str(directory / "previous.conf"))
    assert subprocess.run(["sh", "-c", install], capture_output=True).returncode != 0
    assert live.read_text() == good


def _run_fact(command: str) -> list[str]:
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.splitlines()


def _keypair(directory: Path, name: str) -> Path:
    path = directory / f"user_{name}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def _public(private: Path) -> str:
    return Path(f"{private}.pub").read_text().strip()


def _authorize(path: Path, line: str, mode: int = 0o600) -> None:
    path.write_text(f"{line}\n")
    path.chmod(mode)


def _cluster():
    """A cluster whose head reaches the workers from link addresses that are not loopback."""
    return SimpleNamespace(head=SimpleNamespace(twins=[SimpleNamespace(ip="192.168.100.1")]))


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"sshd not listening on {port} after {seconds} s")
