"""Client files: every served model, limits below max_model_len, and never a secret."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys

import pytest

from sparkdeploy.clients import client_files, launcher_files, ps1_quote
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import validate_inventory
from sparkdeploy.secrets import host_secrets

PEGASUS = "pegasus.home.arpa"


def rendered(data):
    return {path: content for path, (content, _) in client_files(data, validate_inventory(data)).items()}


def test_every_model_of_the_site_gets_launchers_and_an_opencode_entry(inventory_data):
    files = rendered(inventory_data())
    assert {f"{PEGASUS}/claude-openai-gpt-oss-120b.sh", f"{PEGASUS}/claude-openai-gpt-oss-120b.ps1",
            f"{PEGASUS}/claude-qwen-qwen3-coder-30b-a3b-instruct.sh",
            f"{PEGASUS}/anthropic-openai-gpt-oss-120b.py", f"{PEGASUS}/opencode.json"} <= set(files)
    provider = json.loads(files[f"{PEGASUS}/opencode.json"])["provider"]["spark-home"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": "http://pegasus.home.arpa:4000/v1",
                                   "apiKey": "{env:SPARKDEPLOY_PROXY_KEY}"}
    assert set(provider["models"]) == {"openai/gpt-oss-120b", "Qwen/Qwen3-Coder-30B-A3B-Instruct"}


def test_opencode_context_limit_stays_below_max_model_len(inventory_data):
    files = rendered(inventory_data(vllm_params={"max_model_len": 65536}))
    models = json.loads(files[f"{PEGASUS}/opencode.json"])["provider"]["spark-home"]["models"]
    for model in models.values():
        assert model["limit"]["context"] < 65536
        assert model["limit"]["output"] < model["limit"]["context"]


def test_claude_launcher_sets_every_model_slot_and_reads_the_key_from_env(inventory_data, tmp_path):
    script = rendered(inventory_data())[f"{PEGASUS}/claude-openai-gpt-oss-120b.sh"]
    for slot in ("ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
                 "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL"):
        assert f'export {slot}="$model"' in script
    assert "CLAUDE_CODE_ATTRIBUTION_HEADER=0" in script
    assert "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1" in script
    path = tmp_path / "claude.sh"
    path.write_text(script.replace("exec claude", "env | grep ^ANTHROPIC_ | sort #"))
    result = subprocess.run(["bash", str(path)], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "SPARKDEPLOY_PROXY_KEY": "k-from-env"})
    assert "ANTHROPIC_AUTH_TOKEN=k-from-env" in result.stdout
    assert "ANTHROPIC_BASE_URL=http://pegasus.home.arpa:4000" in result.stdout
    missing = subprocess.run(["bash", str(path)], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode != 0 and "export SPARKDEPLOY_PROXY_KEY" in missing.stderr


def test_no_client_file_contains_a_secret(inventory_data):
    data = inventory_data()
    secrets = host_secrets(PEGASUS, data[PEGASUS])
    for path, content in rendered(data).items():
        for value in secrets.values():
            assert value not in content, path


def test_proxy_client_url_overrides_the_host_name(inventory_data):
    files = rendered(inventory_data(proxy_client_url="https://llm.example.internal/"))
    provider = json.loads(files[f"{PEGASUS}/opencode.json"])["provider"]["spark-home"]
    assert provider["options"]["baseURL"] == "https://llm.example.internal/v1"


def test_secrets_export_writes_the_proxy_key_0600_and_rotate_makes_a_new_one(tmp_path):
    store = ["--data", f"secrets_dir={tmp_path / 'secrets'}"]

    def sparkdeploy(*args):
        return subprocess.run([sys.executable, "-m", "sparkdeploy.cli", *args, *store],
                              capture_output=True, text=True, check=True)

    def rendered_env(out):
        sparkdeploy("render", PEGASUS, "--out", str(tmp_path / out), "--show-secrets")
        lines = (tmp_path / out / "opt/sparkdeploy/litellm/secrets.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    before = rendered_env("before")
    env_file = tmp_path / "proxy.env"
    exported = sparkdeploy("secrets", "export", PEGASUS, "--to", str(env_file))
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    assert env_file.read_text() == f"SPARKDEPLOY_PROXY_KEY={before['LITELLM_MASTER_KEY']}\n"
    assert before["LITELLM_MASTER_KEY"] not in exported.stdout + exported.stderr

    rotated = sparkdeploy("secrets", "rotate", PEGASUS)
    after = rendered_env("after")
    assert after["LITELLM_MASTER_KEY"] != before["LITELLM_MASTER_KEY"]
    assert after["POSTGRES_PASSWORD"] == before["POSTGRES_PASSWORD"]
    assert before["LITELLM_MASTER_KEY"] not in rotated.stdout


# --- recipe and data text never executes on a client machine ---------------------------------

# Each tries to create a file in the working directory when a launcher runs.
HOSTILE_MODEL = ("gpt-$(touch sh-subst)`touch sh-tick`';touch sh-semi;'"
                 "\"+__import__('os').system('touch py')+\"")
HOSTILE_URL = "http://127.0.0.1:9/$(touch url-subst)\"+__import__('os').system('touch url-py')+\""


def test_hostile_launcher_values_run_as_plain_text_in_bash_and_python(tmp_path):
    files = launcher_files(HOSTILE_MODEL, HOSTILE_URL, "SPARKDEPLOY_PROXY_KEY", "store")
    (sh_name, (sh, _)), _, (py_name, (py, _)) = files.items()
    work = tmp_path / "work"
    work.mkdir()
    launcher = work / sh_name
    show = "printf '%s\\n' \"$ANTHROPIC_MODEL\" \"$ANTHROPIC_BASE_URL\" #"
    launcher.write_text(sh.replace("exec claude", show))
    result = subprocess.run(["bash", str(launcher)], cwd=work, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "SPARKDEPLOY_PROXY_KEY": "k"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [HOSTILE_MODEL, HOSTILE_URL]
    (work / py_name).write_text(py)
    subprocess.run([sys.executable, py_name], cwd=work, capture_output=True, text=True, timeout=120,
                   env={**os.environ, "SPARKDEPLOY_PROXY_KEY": "k"})
    assert sorted(path.name for path in work.iterdir()) == sorted([sh_name, py_name])


def test_powershell_launcher_quotes_values_verbatim():
    files = launcher_files("it's-\u2019$(x)", "http://h/'$env:X", "SPARKDEPLOY_PROXY_KEY", "store")
    ps1 = next(content for name, (content, _) in files.items() if name.endswith(".ps1"))
    assert "[string]$Model = 'it''s-\u2019\u2019$(x)'," in ps1
    assert "[string]$BaseUrl = 'http://h/''$env:X'" in ps1
    assert ps1_quote("a\u2018b\u201ac\u201bd") == "'a\u2018\u2018b\u201a\u201ac\u201b\u201bd'"


@pytest.mark.parametrize(("key", "value"), [
    ("proxy_client_url", "https://llm.example/$(touch x)"),
    ("proxy_client_url", "https://llm.example/\nrm -rf ~"),
    ("clients_key_env", "KEY}; touch x; #"),
    ("clients_key_env", "KEY\n"),
])
def test_client_data_that_would_execute_is_refused(inventory_data, key, value):
    with pytest.raises(ConfigError, match=rf"host '{PEGASUS}' data: key '{key}'") as error:
        rendered(inventory_data(**{key: value}))
    assert "\n" not in str(error.value).replace(repr(value), "")


@pytest.mark.parametrize("name", ["gpt-$(touch x)", "gpt`id`", "a b", "gpt\n", "x'y", "-flag"])
def test_a_served_model_name_that_is_not_a_plain_name_is_refused(inventory_data, write_recipe, name):
    command = f"vllm serve org/m --served-model-name {shlex.quote(name)} --port 8000"
    recipe = write_recipe('recipe_version: "1"\nname: Odd\ncontainer: vllm-node\nmodel: org/m\n'
                          f"command: {json.dumps(command)}\n")
    with pytest.raises(ConfigError, match=r"key 'command': served model name .* is not allowed"):
        rendered(inventory_data(recipe=recipe))
