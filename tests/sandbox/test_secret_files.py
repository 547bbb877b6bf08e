"""Secret files on the sandbox: 0600 from their first byte, written only by the umask-077
placement (never a /tmp staging copy, never a 0644 file later chmodded), never printed."""

from __future__ import annotations

import subprocess

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.drift import pyinfra_executable
from sparkdeploy.sandbox.state import HOST_NAME
from sparkdeploy.secrets import host_secrets


def test_a_first_placement_of_secrets_env_is_0600_from_its_first_byte(converged, on_sandbox,
                                                                      sandbox_data, deploy_file):
    path = f"{sandbox_data['proxy_compose_dir']}/secrets.env"
    key = host_secrets(HOST_NAME, sandbox_data)["proxy_master_key"]
    on_sandbox(f"rm -f {path}")
    result = subprocess.run([pyinfra_executable(), "inventory.py", deploy_file, "-y", "-vv", "--diff",
                             "--limit", HOST_NAME], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            check=False, stdin=subprocess.DEVNULL)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert key not in log
    commands = [line.split(">>> ", 1)[1] for line in log.splitlines() if ">>> " in line]
    writes = [command for command in commands if path in command and "test -e" not in command]
    # the only command that creates the file: stdin into a umask-077 mktemp file, renamed over it
    assert writes and all("umask 077" in command and "mktemp" in command for command in writes)
    assert not [command for command in commands if "/tmp/pyinfra-" in command and path in command]
    assert on_sandbox(f"stat -c '%U %G %a %F' {path}").split() == ["root", "root", "600", "regular", "file"]
    assert not on_sandbox(f"ls -A {sandbox_data['proxy_compose_dir']} | grep '^\\.secrets' || true").strip()
    assert not on_sandbox(f"grep -rlF -- {key} /tmp /var/tmp 2>/dev/null || true").strip()
