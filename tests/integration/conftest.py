"""The real LiteLLM proxy (pinned, in its own venv) with the project's config and tool-fix callback,
in front of the stand-in vLLM, all on loopback.

The proxy's config is rendered by ``sparkdeploy.proxy`` exactly as a deploy renders it; only the
model's address points at the stand-in. Nothing here skips: CI runs these tests, so a proxy that
cannot be installed or started fails them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import anthropic
import openai
import pytest
import yaml
from loopback_servers import REPO, STANDIN_SCRIPT, free_port, standin_server, stop, wait_until_up

from sparkdeploy.proxy import CALLBACK_MODULE, litellm_config, site_models

LITELLM_VENV_SCRIPT = REPO / "tests" / "integration" / "litellm-venv.sh"
SERVED_MODEL = "openai/gpt-oss-120b"
PROXY_START_SECONDS = 120


def load_standin_module() -> ModuleType:
    """The stand-in's module, for its canned replies (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("model_server", STANDIN_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Standin:
    """The running stand-in vLLM and the request bodies it received."""

    port: int
    request_log: Path

    def requests(self) -> list[dict[str, Any]]:
        lines = self.request_log.read_text().splitlines() if self.request_log.exists() else []
        return [json.loads(line)["body"] for line in lines]

    def request_containing(self, marker: str) -> dict[str, Any]:
        matching = [body for body in self.requests() if marker in json.dumps(body.get("messages"))]
        assert matching, f"the stand-in never received a request containing {marker!r}"
        return matching[-1]


@dataclass
class Proxy:
    """The running LiteLLM proxy: where it listens, its master key, its log and its config directory."""

    base_url: str
    master_key: str
    model: str
    log: Path
    config_dir: Path
    process: subprocess.Popen

    def log_lines(self, prefix: str = "[OSSToolCallFix]") -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if prefix in line]


@pytest.fixture(scope="session")
def litellm_venv() -> Path:
    """LiteLLM's own venv, created on first use by tests/integration/litellm-venv.sh."""
    result = subprocess.run(["bash", str(LITELLM_VENV_SCRIPT)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"could not create LiteLLM's venv ({LITELLM_VENV_SCRIPT}):\n{result.stderr[-3000:]}")
    venv = Path(result.stdout.strip().splitlines()[-1])
    assert (venv / "bin" / "litellm").exists(), f"{venv} has no litellm command"
    return venv


@pytest.fixture(scope="session")
def standin_module() -> ModuleType:
    return load_standin_module()


@pytest.fixture(scope="session")
def standin(tmp_path_factory) -> Iterator[Standin]:
    """The stand-in vLLM on a free loopback port."""
    workdir = tmp_path_factory.mktemp("standin")
    with standin_server(workdir, [SERVED_MODEL]) as port:
        yield Standin(port, workdir / "requests.jsonl")


def proxy_config(standin_port: int) -> dict[str, Any]:
    """The project's proxy config, its one model served by the stand-in on loopback."""
    hosts_data = {"proxy": {"proxy_site": "test"},
                  "standin": {"proxy_site": "test", "vllm_address": "127.0.0.1", "vllm_expose_to_lan": True}}
    services = {"standin": (SimpleNamespace(served_name=SERVED_MODEL, port=standin_port, serves_http=True),)}
    models = site_models("proxy", hosts_data, services)  # type: ignore[arg-type]
    return litellm_config(models, {"proxy_store_prompts": False})


@pytest.fixture(scope="session")
def proxy(litellm_venv, standin, tmp_path_factory) -> Iterator[Proxy]:
    """``litellm --config`` with the rendered config and the callback beside it, as the deploy mounts them."""
    config_dir = tmp_path_factory.mktemp("litellm")
    (config_dir / "config.yaml").write_text(yaml.safe_dump(proxy_config(standin.port), sort_keys=False))
    shutil.copy(REPO / "files" / f"{CALLBACK_MODULE}.py", config_dir / f"{CALLBACK_MODULE}.py")
    port, log = free_port(), config_dir / "proxy.log"
    master_key = f"sk-test-{secrets.token_urlsafe(24)}"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(LITELLM_MASTER_KEY=master_key, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    command = [str(litellm_venv / "bin" / "litellm"), "--config", str(config_dir / "config.yaml"),
               "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=config_dir, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health/liveliness", process, PROXY_START_SECONDS, log)
        yield Proxy(f"http://127.0.0.1:{port}", master_key, SERVED_MODEL, log, config_dir, process)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def client(proxy) -> anthropic.Anthropic:
    """The Anthropic SDK pointed at the proxy, as Claude Code is (ANTHROPIC_BASE_URL, auth token)."""
    return anthropic.Anthropic(base_url=proxy.base_url, auth_token=proxy.master_key, max_retries=0,
                               timeout=60)


@pytest.fixture(scope="session")
def openai_client(proxy) -> openai.OpenAI:
    """The OpenAI SDK pointed at the proxy's chat-completions endpoint, as OpenCode is."""
    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key=proxy.master_key, max_retries=0, timeout=60)
