"""Every Hugging Face repository a ``vllm serve`` command loads, read from its arguments.

vLLM runs with ``HF_HUB_OFFLINE=1`` once the deploy has brought the weights, so a repository the
command names but the deploy did not fetch is a failed start, not a slow one. Besides the served
model, recipes name speculative draft models (``--speculative-config '{"model": ...}'``), separate
tokenizers, config repositories and LoRA adapters; each is found here, with the revision the
command pins for it, if any. Local paths (``/models/...``, ``./x``) are not repositories.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sparkdeploy.errors import ConfigError

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# flag -> what the repository is for; each takes a repository id as its value
_REPO_FLAGS = {
    "--model": "model",
    "--tokenizer": "tokenizer",
    "--hf-config-path": "config",
    "--speculative-model": "draft model",
}
_REVISION_FLAGS = {"--tokenizer": "--tokenizer-revision",
                   "--speculative-model": "--speculative-model-revision"}
_SPECULATIVE = ("--speculative-config", "--speculative_config")


@dataclass(frozen=True)
class ModelRepo:
    """A repository the command loads; ``revision`` None means the default branch."""

    repo_id: str
    role: str
    revision: str | None = None


def command_repos(argv: list[str], source: str) -> list[ModelRepo]:
    """The repositories ``argv`` (``vllm serve ...``) loads, the served model first, no repeats."""
    found: list[ModelRepo] = []
    if argv[:2] == ["vllm", "serve"] and len(argv) > 2 and not argv[2].startswith("-"):
        found.append(ModelRepo(argv[2], "model"))
    for flag, role in _REPO_FLAGS.items():
        value = flag_value(argv, flag)
        if value is not None:
            revision_flag = _REVISION_FLAGS.get(flag)
            found.append(ModelRepo(value, role, flag_value(argv, revision_flag) if revision_flag else None))
    for flag in _SPECULATIVE:
        value = flag_value(argv, flag)
        if value is not None:
            found += _speculative_repos(value, source, flag)
    dotted = flag_value(argv, "--speculative-config.model")
    if dotted is not None:
        found.append(ModelRepo(dotted, "draft model", flag_value(argv, "--speculative-config.revision")))
    for value in _all_values(argv, "--lora-modules", many=True):
        found += _lora_repos(value)
    return _unique(repo for repo in found if is_repo_id(repo.repo_id))


def is_repo_id(value: str) -> bool:
    """``org/name`` as the hub spells it; a path (``/models/x``, ``./x``) is not one."""
    return bool(REPO_ID.fullmatch(value)) and ".." not in value


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` (the last one wins, as in vLLM)."""
    values = _all_values(argv, flag)
    return values[-1] if values else None


def _all_values(argv: list[str], flag: str, many: bool = False) -> list[str]:
    """Every value given to ``flag``; ``many``: the flag takes several (argparse ``nargs="+"``)."""
    values = []
    for index, arg in enumerate(argv):
        if arg == flag and not many:
            values += argv[index + 1:index + 2]
        elif arg == flag:
            for value in argv[index + 1:]:
                if value.startswith("-"):
                    break
                values.append(value)
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
    return values


def _speculative_repos(text: str, source: str, flag: str) -> list[ModelRepo]:
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ConfigError(source, "command", f"{flag} is not valid JSON ({exc})") from exc
    if not isinstance(config, Mapping):
        raise ConfigError(source, "command", f"{flag} must be a JSON object")
    repos = []
    for key, role in (("model", "draft model"), ("tokenizer", "draft tokenizer")):
        value = config.get(key)
        if isinstance(value, str):
            revision = config.get("revision") if key == "model" else None
            repos.append(ModelRepo(value, role, revision if isinstance(revision, str) else None))
    return repos


def _lora_repos(value: str) -> list[ModelRepo]:
    """``name=path`` pairs, or the JSON form ``{"name": ..., "path": ...}``."""
    try:
        entry = json.loads(value)
    except ValueError:
        entry = None
    if isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
        return [ModelRepo(entry["path"], "LoRA adapter")]
    _, sep, path = value.partition("=")
    return [ModelRepo(path, "LoRA adapter")] if sep else []


def _unique(repos) -> list[ModelRepo]:
    seen: dict[str, ModelRepo] = {}
    for repo in repos:
        seen.setdefault(repo.repo_id, repo)
    return list(seen.values())
