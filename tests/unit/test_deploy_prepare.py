"""Bad input stops ``pyinfra … deploy.py`` at prepare: exit 1, one line naming the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


def dry_run(*data: str) -> subprocess.CompletedProcess:
    args = [PYINFRA, "@local", "deploy.py", "--dry"]
    for item in data:
        args += ["--data", item]
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def test_broken_recipe_fails_the_dry_run_before_any_operation(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text('recipe_version: "1"\nname: Broken\ncontainer: img\n'
                      "command: vllm serve m --port {prot}\n")
    result = dry_run(f"recipe={recipe}")
    assert result.returncode == 1
    assert "pyinfra error in" in result.stderr
    assert f"{recipe}: key 'command': unknown placeholder {{prot}}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Proposed changes" not in result.stdout + result.stderr


def test_wrong_data_type_fails_the_dry_run(tmp_path):
    result = dry_run("recipe=openai-gpt-oss-120b", "vllm_params={\"port\": \"eighty\"}",
                     f"secrets_dir={tmp_path}")
    assert result.returncode == 1
    assert "key 'vllm_params.port': expected integer like the recipe default 8000" in result.stderr
