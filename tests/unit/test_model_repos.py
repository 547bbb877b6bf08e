"""Every repository a vLLM command loads: what the deploy fetches before an offline start."""

from __future__ import annotations

import pytest

from sparkdeploy.errors import ConfigError
from sparkdeploy.model_repos import ModelRepo, command_repos, flag_value, is_repo_id
from sparkdeploy.weights import revision_args


def repos(*args: str) -> list[ModelRepo]:
    return command_repos(["vllm", "serve", *args], "recipe.yaml")


def test_the_served_model_comes_first_then_every_other_repository_once():
    found = repos("org/model", "--tokenizer", "org/tok", "--tokenizer-revision", "v2",
                  "--speculative-config", '{"method": "eagle3", "model": "org/draft", "revision": "abc"}',
                  "--hf-config-path", "org/config", "--model", "org/model")
    assert found == [ModelRepo("org/model", "model"), ModelRepo("org/tok", "tokenizer", "v2"),
                     ModelRepo("org/config", "config"), ModelRepo("org/draft", "draft model", "abc")]


def test_dotted_and_legacy_speculative_forms_and_lora_adapters_count():
    found = repos("org/model", "--speculative-config.model", "org/draft",
                  "--speculative-model", "org/old-draft",
                  "--lora-modules", "sql=org/sql-lora", '{"name": "b", "path": "org/b-lora"}',
                  "--port", "8000")
    assert [(repo.repo_id, repo.role) for repo in found] == [
        ("org/model", "model"), ("org/old-draft", "draft model"), ("org/draft", "draft model"),
        ("org/sql-lora", "LoRA adapter"), ("org/b-lora", "LoRA adapter")]


def test_local_paths_and_method_only_speculation_are_not_repositories():
    found = repos("/models/llama", "--tokenizer", "./tok", "--speculative-config", '{"method": "mtp"}',
                  "--chat-template", "fixed_chat_template.jinja")
    assert found == []
    assert not is_repo_id("../etc") and not is_repo_id("org/a/b") and is_repo_id("z-lab/Qwen3.6-DFlash")


def test_a_speculative_config_that_is_not_json_names_the_recipe():
    with pytest.raises(ConfigError, match=r"recipe\.yaml: key 'command': --speculative-config is not valid"):
        repos("org/model", "--speculative-config", "{method: mtp}")


def test_flag_values_take_the_last_given_as_vllm_does():
    assert flag_value(["--port", "1", "--port=2"], "--port") == "2"
    assert flag_value(["--port"], "--port") is None


def test_the_models_revision_pins_its_tokenizer_only_when_it_is_the_models_own():
    assert revision_args(["vllm", "serve", "org/m"], {"model_revision": "v1"}) == [
        "--revision", "v1", "--tokenizer-revision", "v1"]
    assert revision_args(["vllm", "serve", "org/m", "--tokenizer", "org/t"], {"model_revision": "v1"}) == [
        "--revision", "v1"]
    assert revision_args(["vllm", "serve", "org/m", "--revision=v0"], {"model_revision": "v1"}) == [
        "--tokenizer-revision", "v1"]
