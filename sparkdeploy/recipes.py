"""Recipes in eugr/spark-vllm-docker's v1 format: loading, validation and command rendering.

A recipe is accepted exactly when upstream's ``run-recipe.py`` would accept it, plus the seed's
``extra_docker_args``; anything else is a :class:`ConfigError` naming the file and the key, so a
typo never reaches a host. Placeholders render with ``str.format`` as upstream does, so recipes
written for upstream (``{{ }}`` for literal JSON braces) render the same here.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkdeploy import strict_yaml
from sparkdeploy.errors import ConfigError, type_name

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"

REQUIRED_KEYS = ("recipe_version", "name", "container", "command")
# key -> (accepted python types, description for the error message)
_KEY_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "recipe_version": ((str, int), 'the string "1"'),
    "name": ((str,), "a string"),
    "container": ((str,), "an image tag string"),
    "command": ((str,), "a string (a YAML block `|`)"),
    "description": ((str,), "a string"),
    "model": ((str, type(None)), "a Hugging Face repo id string"),
    "mods": ((list, type(None)), "a list of mod paths"),
    "defaults": ((dict, type(None)), "a mapping of placeholder values"),
    "env": ((dict, list, type(None)), "a mapping of environment variables"),
    "build_args": ((list, type(None)), "a list of build-and-copy.sh flags"),
    "solo_only": ((bool,), "true or false"),
    "cluster_only": ((bool,), "true or false"),
    "extra_docker_args": ((str, list, type(None)), "a docker-run argument string"),
}
SCALAR_TYPES = (str, int, float, bool)
# Placeholders upstream's recipes share, and the values vLLM can run with.
_PLACEHOLDER_RANGES: dict[str, tuple[int, int | None]] = {
    "port": (1, 65535),
    "max_model_len": (1, None),
    "max_num_batched_tokens": (1, None),
    "max_num_seqs": (1, None),
    "tensor_parallel": (1, None),
    "pipeline_parallel": (1, None),
}
_EXECUTOR_BACKEND = re.compile(r"\s--distributed-executor-backend(?:=|\s+)\S+")
_LINE_CONTINUATION = re.compile(r"[ \t]*\\[ \t]*\n\s*")
_SPACED_CONTINUATION = re.compile(r"\\[ \t]+$")
# Docker's image reference grammar: [registry[:port]/]path[:tag][@digest], lowercase path.
IMAGE_REFERENCE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?")


@dataclass(frozen=True)
class Recipe:
    """A validated v1 recipe. ``source`` is the file it came from, for error messages."""

    source: str
    name: str
    container: str
    command: str
    recipe_version: str = "1"
    description: str = ""
    model: str | None = None
    mods: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    build_args: tuple[str, ...] = ()
    solo_only: bool = False
    cluster_only: bool = False
    extra_docker_args: tuple[str, ...] = ()
    # what the loader read differently than upstream would, or ignored (unknown keys)
    warnings: tuple[str, ...] = ()

    @property
    def placeholders(self) -> list[str]:
        """Placeholder names the command template uses, in order of first use."""
        names: list[str] = []
        for _, name, _, _ in string.Formatter().parse(self.command):
            if name is not None and name not in names:
                names.append(name)
        return names


def resolve_recipe_path(ref: str, recipes_dir: Path = RECIPES_DIR) -> Path:
    """Find a recipe the way upstream does: a path, the path plus .yaml/.yml, or a name in recipes/."""
    candidates = [Path(ref), Path(f"{ref}.yaml"), Path(f"{ref}.yml")]
    candidates += [recipes_dir / ref, recipes_dir / f"{ref}.yaml", recipes_dir / f"{ref}.yml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    available = ", ".join(sorted(p.stem for p in recipes_dir.glob("*.yaml"))) or "none"
    raise ConfigError(
        "host data", "recipe", f"no recipe named {ref!r} (not a file, not in {recipes_dir})",
        allowed=f"a path to a recipe YAML file or one of: {available}",
    )


def load_recipe(ref: str, recipes_dir: Path = RECIPES_DIR) -> Recipe:
    """Load and validate a recipe by name or path."""
    path = resolve_recipe_path(ref, recipes_dir)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the recipe: {exc}") from exc
    return parse_recipe(data, str(path))


def parse_recipe(data: bytes | str, source: str) -> Recipe:
    """Validate recipe YAML; ``source`` names it in errors and warnings."""
    try:
        raw, yaml_warnings = strict_yaml.load(data.encode() if isinstance(data, str) else data)
    except strict_yaml.StrictYamlError as exc:
        raise ConfigError(source, None, str(exc)) from exc
    if not isinstance(raw, dict):
        raise ConfigError(source, None, f"a recipe must be a YAML mapping, got {type_name(raw)}")
    warnings = [f"{source}: {warning}" for warning in yaml_warnings]
    warnings += [_unknown_key_warning(source, key) for key in raw if key not in _KEY_TYPES]
    raw = {key: value for key, value in raw.items() if key in _KEY_TYPES}
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise ConfigError(source, key, "required key is missing",
                              allowed=f"required keys are {', '.join(REQUIRED_KEYS)}")
    for key, value in raw.items():
        types, description = _KEY_TYPES[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(source, key, f"expected {description}, got {type_name(value)}")
    if str(raw["recipe_version"]) != "1":
        raise ConfigError(source, "recipe_version", f"unsupported version {raw['recipe_version']!r}",
                          allowed='"1"')
    if raw.get("solo_only") and raw.get("cluster_only"):
        raise ConfigError(source, "cluster_only", "a recipe cannot be both solo_only and cluster_only")
    if not IMAGE_REFERENCE.fullmatch(raw["container"]):
        raise ConfigError(source, "container", f"{raw['container']!r} is not an image reference",
                          allowed="a Docker image name such as vllm-node or nvcr.io/nvidia/vllm:25.12-py3")
    defaults = _scalars(raw.get("defaults") or {}, source, "defaults")
    env = _scalars(_env_mapping(raw.get("env"), source), source, "env")
    for list_key in ("mods", "build_args"):
        for index, item in enumerate(raw.get(list_key) or []):
            if not isinstance(item, str):
                raise ConfigError(source, f"{list_key}[{index}]",
                                  f"expected a string, got {type_name(item)}")
    for index, mod in enumerate(raw.get("mods") or []):
        _check_mod_path(mod, source, index)
    command, command_warnings = _clean_command(raw["command"], source)

    recipe = Recipe(
        source=source,
        name=raw["name"],
        container=raw["container"],
        command=command,
        recipe_version=str(raw["recipe_version"]),
        description=raw.get("description") or "",
        model=raw.get("model"),
        mods=tuple(raw.get("mods") or ()),
        defaults=defaults,
        env={key: _env_string(value) for key, value in env.items()},
        build_args=tuple(raw.get("build_args") or ()),
        solo_only=bool(raw.get("solo_only", False)),
        cluster_only=bool(raw.get("cluster_only", False)),
        extra_docker_args=_split_docker_args(raw.get("extra_docker_args"), source),
        warnings=tuple(warnings + command_warnings),
    )
    _check_template(recipe)
    return recipe


_MOD_PATH = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?")


def _check_mod_path(mod: str, source: str, index: int) -> None:
    """A mod is a directory of the upstream checkout (``mods/<name>``), never a host path."""
    parts = mod.rstrip("/").split("/")
    if not _MOD_PATH.fullmatch(mod) or any(part in ("", ".", "..") for part in parts):
        raise ConfigError(source, f"mods[{index}]", f"{mod!r} is not a directory inside the upstream "
                          "checkout", allowed="a relative path such as mods/fix-qwen3.6-chat-template")


def _unknown_key_warning(source: str, key: str) -> str:
    """Upstream ignores keys it does not know (people keep notes in them): say so, kindly."""
    close = difflib.get_close_matches(key, _KEY_TYPES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{source}: key {key!r} is not a recipe key and is ignored{hint}"


def _env_mapping(value: object, source: str) -> object:
    """``env: []`` is an empty environment, as upstream reads it; a non-empty list is not."""
    if isinstance(value, list):
        if value:
            raise ConfigError(source, "env", "expected a mapping of environment variables, got a "
                              "non-empty list", allowed="KEY: value lines, or {} / [] for none")
        return {}
    return value or {}


def _scalars(mapping: object, source: str, key: str) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise ConfigError(source, key, f"expected a mapping, got {type_name(mapping)}")
    for name, value in mapping.items():
        if not isinstance(value, SCALAR_TYPES):
            raise ConfigError(source, f"{key}.{name}",
                              f"expected a string, number or boolean, got {type_name(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(source, f"{key}.{name}", f"{value} is not a finite number")
    return dict(mapping)


def _clean_command(command: str, source: str) -> tuple[str, list[str]]:
    """The command as its author meant it, with a warning for each line read differently than
    bash would: a ``#`` line (bash would end the command there) is dropped, and a backslash
    followed by spaces continues the line (bash would pass a lone space and end the command)."""
    kept, warnings = [], []
    for number, line in enumerate(command.replace("\r\n", "\n").split("\n"), start=1):
        if line.lstrip().startswith("#"):
            warnings.append(f"{source}: command line {number} is a comment and is left out "
                            f"({line.strip()[:60]})")
            continue
        if _SPACED_CONTINUATION.search(line):
            warnings.append(f"{source}: command line {number} ends in a backslash followed by "
                            "spaces; read as a line continuation")
        kept.append(line)
    return "\n".join(kept), warnings


def _env_string(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _split_docker_args(value: str | list | None, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise ConfigError(source, "extra_docker_args", f"cannot split into arguments: {exc}") from exc


def _check_template(recipe: Recipe) -> None:
    """Reject a command template ``str.format`` cannot parse (e.g. single braces around JSON)."""
    try:
        fields = list(string.Formatter().parse(recipe.command))
    except ValueError as exc:
        raise ConfigError(recipe.source, "command",
                          f"invalid template ({exc}); write literal braces as {{{{ and }}}}") from exc
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if not name.isidentifier():
            raise ConfigError(recipe.source, "command",
                              f"placeholder {{{name}}} is not a simple name; write literal braces "
                              "as {{ and }}")
        if spec or conversion:
            raise ConfigError(recipe.source, "command",
                              f"placeholder {{{name}}} uses a format spec or conversion, which "
                              "upstream recipes do not support")


def placeholder_values(
    recipe: Recipe, overrides: Mapping[str, Any], *, solo: bool, source: str
) -> dict[str, Any]:
    """Recipe defaults overridden by host data; solo forces ``tensor_parallel`` 1 as upstream does.

    An override must name a placeholder of the command (a typo would silently do nothing) and
    keep the type of the default it replaces (an integer stays an integer; a number may be given
    as an integer), so ``port: "eighty"`` fails here, not inside vLLM.
    """
    values = dict(recipe.defaults)
    if solo and overrides.get("tensor_parallel", 1) != 1:
        raise ConfigError(source, "vllm_params.tensor_parallel",
                          f"a solo host runs one GPU, got {overrides['tensor_parallel']}", allowed="1")
    for key, value in overrides.items():
        if not isinstance(value, SCALAR_TYPES):
            raise ConfigError(source, f"vllm_params.{key}",
                              f"expected a string, number or boolean, got {type_name(value)}")
        if key not in recipe.placeholders:
            close = difflib.get_close_matches(key, recipe.placeholders, n=1)
            raise ConfigError(source, f"vllm_params.{key}",
                              f"the command of {recipe.source} has no placeholder {{{key}}}"
                              + (f" (did you mean {close[0]!r}?)" if close else ""),
                              allowed=", ".join(recipe.placeholders) or "none")
        if key in recipe.defaults:
            _check_same_type(recipe.defaults[key], value, source, key)
        values[key] = value
    if solo:
        values["tensor_parallel"] = 1
    for key, (low, high) in _PLACEHOLDER_RANGES.items():
        _check_range(values, key, low, high, recipe.source if key not in overrides else source,
                     "vllm_params." + key if key in overrides else "defaults." + key)
    return values


def _check_range(values: Mapping[str, Any], key: str, low: int, high: int | None, source: str,
                 where: str) -> None:
    value = values.get(key)
    if value is None or (isinstance(value, str) and not value.strip().isdigit()):
        return
    number = int(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int) or number < low or (
            high is not None and number > high):
        raise ConfigError(source, where, f"{value!r} is out of range",
                          allowed=f"a whole number from {low}" + (f" to {high}" if high else " up"))


def _check_same_type(default: object, value: object, source: str, key: str) -> None:
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(source, f"vllm_params.{key}",
                          f"expected {type_name(default)} like the recipe default "
                          f"{default!r}, got {type_name(value)} {value!r}")


def render_command(recipe: Recipe, values: Mapping[str, Any], *, solo: bool) -> str:
    """Substitute placeholders; in solo mode drop ``--distributed-executor-backend`` as upstream."""
    missing = [name for name in recipe.placeholders if name not in values]
    if missing:
        raise ConfigError(
            recipe.source, "command", f"unknown placeholder {{{missing[0]}}}",
            allowed=", ".join(sorted(values)) + "; define others in the recipe's defaults or the "
            "host's vllm_params",
        )
    command = recipe.command.format(**values)
    command = _LINE_CONTINUATION.sub(" ", command).strip()
    if solo:
        command = _EXECUTOR_BACKEND.sub("", command)
    return command.rstrip("\\").strip()


def command_argv(command: str, source: str) -> list[str]:
    """Split a rendered command into argv, as bash would for a simple command."""
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise ConfigError(source, "command", f"cannot split into arguments: {exc}") from exc
