"""Recipes in eugr/spark-vllm-docker's v1 format: loading, validation and command rendering.

A recipe is accepted exactly when upstream's ``run-recipe.py`` would accept it, plus the seed's
``extra_docker_args``; anything else is a :class:`ConfigError` naming the file and the key, so a
typo never reaches a host. Placeholders render with ``str.format`` as upstream does, so recipes
written for upstream (``{{ }}`` for literal JSON braces) render the same here.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    "env": ((dict, type(None)), "a mapping of environment variables"),
    "build_args": ((list, type(None)), "a list of build-and-copy.sh flags"),
    "solo_only": ((bool,), "true or false"),
    "cluster_only": ((bool,), "true or false"),
    "extra_docker_args": ((str, list, type(None)), "a docker-run argument string"),
}
SCALAR_TYPES = (str, int, float, bool)
_EXECUTOR_BACKEND = re.compile(r"\s--distributed-executor-backend(?:=|\s+)\S+")
_LINE_CONTINUATION = re.compile(r"[ \t]*\\[ \t]*\n\s*")


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
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the recipe: {exc}") from exc
    return parse_recipe(text, str(path))


def parse_recipe(text: str, source: str) -> Recipe:
    """Validate recipe YAML text; ``source`` names it in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, None, f"YAML syntax error{where}: {problem}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(source, None, f"a recipe must be a YAML mapping, got {type_name(raw)}")

    unknown = sorted(set(raw) - set(_KEY_TYPES))
    if unknown:
        raise ConfigError(source, unknown[0], "unknown recipe key", allowed=", ".join(_KEY_TYPES))
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

    defaults = raw.get("defaults") or {}
    for key, value in defaults.items():
        if not isinstance(value, SCALAR_TYPES):
            raise ConfigError(source, f"defaults.{key}",
                              f"expected a string, number or boolean, got {type_name(value)}")
    env = raw.get("env") or {}
    for key, value in env.items():
        if not isinstance(value, SCALAR_TYPES):
            raise ConfigError(source, f"env.{key}",
                              f"expected a string, number or boolean, got {type_name(value)}")
    for list_key in ("mods", "build_args"):
        for index, item in enumerate(raw.get(list_key) or []):
            if not isinstance(item, str):
                raise ConfigError(source, f"{list_key}[{index}]",
                                  f"expected a string, got {type_name(item)}")

    recipe = Recipe(
        source=source,
        name=raw["name"],
        container=raw["container"],
        command=raw["command"],
        recipe_version=str(raw["recipe_version"]),
        description=raw.get("description") or "",
        model=raw.get("model"),
        mods=tuple(raw.get("mods") or ()),
        defaults=dict(defaults),
        env={key: _env_string(value) for key, value in env.items()},
        build_args=tuple(raw.get("build_args") or ()),
        solo_only=bool(raw.get("solo_only", False)),
        cluster_only=bool(raw.get("cluster_only", False)),
        extra_docker_args=_split_docker_args(raw.get("extra_docker_args"), source),
    )
    _check_template(recipe)
    return recipe


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

    An override must keep the type of the default it replaces (an integer stays an integer; a
    number may be given as an integer), so ``port: "eighty"`` fails here, not inside vLLM.
    """
    values = dict(recipe.defaults)
    for key, value in overrides.items():
        if not isinstance(value, SCALAR_TYPES):
            raise ConfigError(source, f"vllm_params.{key}",
                              f"expected a string, number or boolean, got {type_name(value)}")
        if key in recipe.defaults:
            _check_same_type(recipe.defaults[key], value, source, key)
        values[key] = value
    if solo:
        if "tensor_parallel" in overrides and overrides["tensor_parallel"] != 1:
            raise ConfigError(source, "vllm_params.tensor_parallel",
                              f"a solo host runs one GPU, got {overrides['tensor_parallel']}",
                              allowed="1")
        values["tensor_parallel"] = 1
    return values


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
