"""Fuzz of host data and recipes through ``sparkdeploy render`` (the CLI's own entry point).

Seeded and bounded in time. Every rejection must be one line naming the host or recipe file and
the key, never a traceback; the known accepted-but-wrong classes (ports outside 1-65535,
timeouts <= 0, inf/nan fractions, max_model_len <= 0, unparsable URLs, trailing newlines, None
defaults never type-checked, secrets compose would re-read) must be rejected, not accepted.
"""

from __future__ import annotations

import io
import json
import random
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from sparkdeploy import cli
from sparkdeploy.commands import options
from sparkdeploy.data import documented_defaults

SEED = 15
BUDGET_SECONDS = 12
HOST = "pegasus.home.arpa"
HOSTS = ("pegasus.home.arpa", "stella.home.arpa")
_RECIPE = ('recipe_version: "1"\nname: Fuzz\nmodel: openai/gpt-oss-120b\ncontainer: {container}\n'
           "defaults:\n  port: 8000\n  max_model_len: 32768\n"
           "command: vllm serve openai/gpt-oss-120b --port {{port}} --max-model-len {{max_model_len}}\n")


def render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]) -> tuple[int, str]:
    """``sparkdeploy render HOST`` with ``overrides`` as its --data values (any Python value)."""
    monkeypatch.setattr(options, "parse_data_overrides",
                        lambda _: {"secrets_dir": str(tmp_path / "secrets"), **overrides})
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["render", HOST, "--out", str(tmp_path / "out")])
    return code, err.getvalue()


def assert_one_line_rejection(code: int, stderr: str, sources: tuple[str, ...], key: str | None) -> None:
    assert code == 1, f"accepted: {stderr}"
    lines = [line for line in stderr.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sparkdeploy: ") and any(source in lines[0] for source in sources), lines
    if key is not None:
        assert f"key '{key}" in lines[0], lines


# Values of the right type that are still wrong: each must be refused, naming its key.
WRONG = [
    ("service_home", 5), ("service_home", "/home/cluster\n"), ("service_home", "relative"),
    ("recipe", 7), ("cluster_group", ["a"]), ("model_revision", 40),
    ("proxy_port", 0), ("proxy_port", 65536), ("proxy_port", -4000), ("cluster_master_port", 70000),
    ("vllm_health_timeout", 0), ("proxy_health_timeout", -1), ("deploy_poll_interval", 0),
    ("verify_timeout", 0), ("upstream_build_timeout", -5), ("model_download_timeout", 0),
    ("clients_context_fraction", float("inf")), ("clients_context_fraction", float("nan")),
    ("clients_context_fraction", -0.5), ("clients_context_fraction", 1.5),
    ("model_hub_endpoint", "http://[::1"), ("model_pip_index_url", "http://[::1]:x/simple"),
    ("proxy_client_url", "http://[::1"), ("verify_vllm_url", "ftp://h"),
    ("toolkit_repo_url", "https://h/deb\n"), ("upstream_repo_url", "-oProxyCommand=x"),
    ("upstream_commit", "358bf26e3d7d315450a6159ccdc0b38cbbd6b855\n"),
    ("model_revision", "main\n"), ("service_user", "cluster\n"), ("clients_key_env", "KEY\n"),
    ("vllm_compose_dir", "/opt/x/\n"), ("vllm_compose_dir", "/../.."),
    ("proxy_master_key", "sk-0123456789abcdefgh\nX=1"), ("proxy_master_key", "sk-0123456789abc$HOME"),
    ("proxy_db_password", "0123456789abcdefgh #c"), ("model_hub_token", "hf_abcdefgh12345678\n"),
    ("vllm_params", {"max_model_len": 0}), ("vllm_params", {"max_model_len": -1}),
    ("vllm_params", {"port": 0}), ("vllm_params", {"port": 65536}),
    ("vllm_params", {"gpu_memory_utilization": float("nan")}),
    ("vllm_params", {"max_model_lenn": 1024}),
    ("ssh_key", "/k\nProxyCommand x"),
]


@pytest.mark.parametrize(("key", "value"), WRONG, ids=[f"{k}={v!r}" for k, v in WRONG])
def test_wrong_values_are_rejected_in_one_line(tmp_path, monkeypatch, key, value):
    code, stderr = render(tmp_path, monkeypatch, {key: value})
    assert_one_line_rejection(code, stderr, HOSTS, key)


RECIPES = {
    "non-utf8": b'recipe_version: "1"\nname: \xff\xfe\ncontainer: vllm-node\n',
    "alias bomb": (b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
                   + b"".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n"
                              .encode() for i in range(8))),
    "binary key": b'recipe_version: "1"\n? !!binary aGVsbG8=\n: 1\nname: x\ncontainer: vllm-node\n',
    "duplicate keys": _RECIPE.format(container="vllm-node").encode() + b"container: other\n",
    "empty container": _RECIPE.format(container='""').encode(),
    "empty file": b"",
    "a list": b"- 1\n- 2\n",
}


@pytest.mark.parametrize("case", list(RECIPES))
def test_hostile_recipes_are_rejected_in_one_line(tmp_path, monkeypatch, case):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(RECIPES[case])
    started = time.monotonic()
    code, stderr = render(tmp_path, monkeypatch, {"recipe": str(recipe)})
    assert time.monotonic() - started < 20, "a recipe must not cost minutes"
    assert_one_line_rejection(code, stderr, (str(recipe),), None)


def test_the_fuzz_recipe_itself_is_accepted(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(_RECIPE.format(container="vllm-node"))
    assert render(tmp_path, monkeypatch, {"recipe": str(recipe)}) == (0, "")


_POOL: list[Any] = [None, 0, -1, 1, 65536, 2**63, 0.5, float("inf"), float("nan"), True, False, "",
                    "x", "x\n", " ", "-x", "$(touch x)", "/../..", "http://[::1", "a" * 300,
                    [], ["x"], [1, None], {}, {"a": 1}, {"port": "80"}, b"\xff"]


def test_random_host_data_is_accepted_or_rejected_in_one_line_never_a_traceback(tmp_path, monkeypatch):
    """Random values for random documented keys, one to three at a time, until the budget."""
    rng = random.Random(SEED)
    keys = sorted(documented_defaults())
    started, cases, rejected = time.monotonic(), 0, 0
    while time.monotonic() - started < BUDGET_SECONDS and cases < 400:
        overrides = {key: rng.choice(_POOL) for key in rng.sample(keys, rng.randint(1, 3))}
        overrides.pop("secrets_dir", None)
        try:
            code, stderr = render(tmp_path, monkeypatch, overrides)
        except Exception as exc:  # a traceback: the case is the failure message
            raise AssertionError(f"traceback for {overrides!r}: {exc!r}") from exc
        cases += 1
        if code:
            rejected += 1
            keys_named = [key for key in overrides if f"key '{key}" in stderr]
            assert keys_named, f"{overrides!r}: {stderr}"
            assert_one_line_rejection(code, stderr, HOSTS, None)
    print(json.dumps({"seed": SEED, "cases": cases, "rejected": rejected}))
    assert cases >= 20
