"""Secret files on a host: 0600 from the first byte, written by their owner, never through a link,
never printed (not by --diff, --debug, -vv or debug-inventory)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

from sparkdeploy.drift import redact
from sparkdeploy.errors import ConfigError
from sparkdeploy.operations import secret_write_command
from sparkdeploy.plan import plan_host, validate_inventory
from sparkdeploy.secret_values import SuppliedSecret
from sparkdeploy.secrets import host_secrets, known_secrets

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
TOKEN = "hf_NeverPrintedToken0123456789"
MY_GROUP = grp.getgrgid(os.getegid()).gr_name


def start_write(path: Path, user: str = "root", group: str = MY_GROUP) -> subprocess.Popen:
    """The placement command, run for real, its stdin (the secret) still open."""
    return subprocess.Popen(secret_write_command(str(path), user, group, "0600"), shell=True,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_link_at_the_secret_path_is_replaced_never_followed(tmp_path):
    victim = tmp_path / "root-only-file"
    victim.write_text("root's own content\n")
    home = tmp_path / "home" / ".cache" / "huggingface"
    home.mkdir(parents=True)
    (home / "token").symlink_to(victim)
    writer = start_write(home / "token")
    writer.communicate(TOKEN + "\n", timeout=30)
    assert writer.returncode == 0
    assert victim.read_text() == "root's own content\n"
    assert not (home / "token").is_symlink() and (home / "token").read_text() == TOKEN + "\n"
    assert stat.S_IMODE((home / "token").stat().st_mode) == 0o600


def test_the_secret_is_never_readable_by_others_while_it_is_written(tmp_path):
    target = tmp_path / "litellm" / "secrets.env"
    writer = start_write(target)
    writer.stdin.write("LITELLM_MASTER_KEY=sk-first-half")
    writer.stdin.flush()
    # cat is blocked on stdin: the only file is the temporary one, and it is already 0600
    for _ in range(200):
        partial = list(target.parent.glob(".secrets.env.*")) if target.parent.exists() else []
        if partial:
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert len(partial) == 1 and not target.exists()
    assert stat.S_IMODE(partial[0].stat().st_mode) == 0o600
    writer.communicate("-second-half\n", timeout=30)
    assert writer.returncode == 0 and not list(target.parent.glob(".secrets.env.*"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "LITELLM_MASTER_KEY=sk-first-half-second-half\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the service user needs root")
def test_the_service_users_file_is_written_by_the_service_user():
    nobody = pwd.getpwnam("nobody")
    with tempfile.TemporaryDirectory() as scratch:  # pytest's tmp_path is closed to others
        _written_by_nobody(Path(scratch), nobody)


def _written_by_nobody(scratch: Path, nobody: pwd.struct_passwd) -> None:
    scratch.chmod(0o755)
    home = scratch / "home"
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    victim = scratch / "shadow"
    victim.write_text("x\n")
    victim.chmod(0o600)
    (home / "token").symlink_to(victim)
    writer = start_write(home / "token", "nobody", grp.getgrgid(nobody.pw_gid).gr_name)
    _, errors = writer.communicate(TOKEN, timeout=30)
    assert writer.returncode == 0, errors
    placed = (home / "token").lstat()
    assert stat.S_ISREG(placed.st_mode) and placed.st_uid == nobody.pw_uid
    assert victim.read_text() == "x\n" and victim.stat().st_uid == 0


def fake_deploy(*args: str, data: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    # the weights are complete: the run places the token and fetches nothing
    tree = json.dumps({"format_version": 1, "files": {"config.json": {"size": 2, "blob_id": "a"}}})
    responses = {"/etc/passwd": "cluster:x:1000:1000::/home/cluster:/bin/bash|cluster|cluster||",
                 "findmnt": f"store ok ext4\ncommit {'b' * 40}\ntree {tree}\nfile 2 config.json"}
    command = [PYINFRA, *args, "@fake/spark", "tests/sandbox/weights_deploy.py",
               "--data", f"fake_responses={json.dumps(responses)}",
               "--data", "recipe=openai-gpt-oss-120b", "--data", f"model_hub_token={TOKEN}",
               "--data", "caches_tiktoken_source=tests/standins/tiktoken/o200k_base.tiktoken",
               "--data", "caches_tiktoken_sha256="
               "e66088df4cdb28fbad3c55ac5a7ae741bc402e732ed948eb096a8ed6f852768f"]
    for item in data:
        command += ["--data", item]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, env={**os.environ, "PYINFRA_FAKE_DELAY": "0"})


def test_a_real_run_with_diff_debug_and_commands_shown_never_prints_the_token(tmp_path):
    result = fake_deploy("-y", "-vv", "--diff", "--debug", data=(f"secrets_dir={tmp_path}",))
    output = result.stdout + result.stderr
    assert "Place the Hugging Face token for gated models (secret)" in output
    assert TOKEN not in output
    writes = [line.split(">>> ", 1)[1] for line in output.splitlines()
              if ">>> " in line and "huggingface/token" in line and "test -e" not in line]
    assert len(writes) == 1 and writes[0].startswith("runuser -u cluster -- sh -c ")
    assert "umask 077" in writes[0] and "mv -fT" in writes[0]
    assert result.returncode == 0, output[-2000:]


def test_debug_inventory_shows_a_secret_from_the_environment_as_stars(tmp_path):
    group_data = tmp_path / "group_data"
    group_data.mkdir()
    (group_data / "all.py").write_text(
        "from sparkdeploy.secret_values import secret_from_env\n"
        "proxy_master_key = secret_from_env('X15_PROXY_KEY')\n")
    inventory = tmp_path / "inventory.py"
    inventory.write_text("sparks = [('@fake/spark', {})]\n")
    key = "sk-FromTheEnvironment0123456789"
    for extra in ((), ("--json",)):
        result = subprocess.run([PYINFRA, str(inventory), "debug-inventory", "--debug",
                                 "--group-data", str(group_data), *extra],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "X15_PROXY_KEY": key})
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        assert key not in output and "proxy_master_key" in output


def test_render_writes_placeholders_unless_secrets_are_asked_for(tmp_path):
    def render(*extra: str) -> str:
        out = tmp_path / f"out{len(extra)}"
        subprocess.run([sys.executable, "-m", "sparkdeploy.cli", "render", "pegasus.home.arpa",
                        "--out", str(out), "--data", f"secrets_dir={tmp_path / 'secrets'}", *extra],
                       cwd=PROJECT_ROOT, capture_output=True, check=True)
        return (out / "opt/sparkdeploy/litellm/secrets.env").read_text()

    hidden, shown = render(), render("--show-secrets")
    stored = json.loads((tmp_path / "secrets" / "pegasus.home.arpa.json").read_text())
    assert hidden.startswith("LITELLM_MASTER_KEY=***\nPOSTGRES_PASSWORD=***\n")
    assert not any(value in hidden for value in stored.values())
    assert f"LITELLM_MASTER_KEY={stored['proxy_master_key']}\n" in shown


def test_git_ignores_rendered_output():
    ignored = subprocess.run(["git", "check-ignore", "-q", "rendered/opt/sparkdeploy/litellm/secrets.env"],
                             cwd=PROJECT_ROOT)
    assert ignored.returncode == 0


def test_one_redaction_covers_supplied_and_generated_secrets_in_any_secrets_dir(inventory_data):
    supplied = "sk-SuppliedByTheOperator0123456789"
    data = inventory_data(proxy_master_key=SuppliedSecret(supplied),
                          model_hub_token="hf_SuppliedHubToken0123456789")
    generated = host_secrets("pegasus.home.arpa", data["pegasus.home.arpa"])["proxy_db_password"]
    text = f"a {supplied} b hf_SuppliedHubToken0123456789 c {generated} d {quote(generated, safe='')}"
    assert redact(text, known_secrets(data)) == "a *** b *** c *** d ***"


def test_a_secret_from_the_environment_reaches_only_the_env_file(inventory_data):
    supplied = "sk-SuppliedByTheOperator0123456789"
    data = inventory_data(proxy_master_key=SuppliedSecret(supplied))
    files = {f.path: f for f in plan_host("pegasus.home.arpa", data, validate_inventory(data)).files}
    assert f"LITELLM_MASTER_KEY={supplied}\n" in files["/opt/sparkdeploy/litellm/secrets.env"].content
    assert supplied not in repr(data["pegasus.home.arpa"]["proxy_master_key"])


@pytest.mark.parametrize("value", ["sk-with-newline-0123456789\nX=1", "sk-with-dollar-${HOME}-01234",
                                   "sk-with-hash-0123456789 #comment", "sk-with-quote-'0123456789'"])
def test_a_supplied_secret_compose_would_reparse_is_refused_without_showing_it(inventory_data, value):
    data = inventory_data(proxy_master_key=value)
    with pytest.raises(ConfigError, match=r"host 'pegasus.home.arpa' data: key 'proxy_master_key'") as error:
        plan_host("pegasus.home.arpa", data, validate_inventory(data))
    assert value not in str(error.value) and "\n" not in str(error.value)
