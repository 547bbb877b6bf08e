"""What a recipe's ``extra_docker_args`` may do to the vLLM container, mapped onto compose keys.

A recipe is third-party input, and the container runs as root with the GPU: a mount of ``/``,
``--privileged``, an added capability, a device or a security option would make the recipe root
on the host. So a recipe may mount only below the service user's home and the model store, and
needs the operator's opt-in in data for anything else (``recipe_allowed_mounts``,
``recipe_allow_privileges``). The flags sparkdeploy knows are mapped onto compose keys; anything
else is an error, since compose would silently drop it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sparkdeploy.data import service_home
from sparkdeploy.errors import ConfigError
from sparkdeploy.recipes import Recipe

SUPPORTED = (
    "-v/--volume", "-e/--env", "--ulimit", "--shm-size", "--cap-add", "--device",
    "--security-opt", "--memory", "--memory-swap", "--pids-limit", "--privileged",
)
# Flags that give the container power over the host.
_PRIVILEGED = {"--privileged", "--cap-add", "--device", "--security-opt"}


@dataclass(frozen=True)
class RecipePolicy:
    """What the operator lets recipes do: host paths they may mount, and host privileges."""

    mount_roots: tuple[str, ...]
    allow_privileges: bool


def recipe_policy(data: Mapping[str, Any]) -> RecipePolicy:
    """The service home and the model store, plus whatever data opts in to."""
    extra = data.get("recipe_allowed_mounts") or []
    roots = (service_home(data), str(data.get("model_store_nfs_dir") or ""), *map(str, extra))
    return RecipePolicy(tuple(posixpath.normpath(root) for root in roots if root.startswith("/")),
                        bool(data.get("recipe_allow_privileges")))


def apply_docker_args(service: dict[str, Any], volumes: dict[str, str], recipe: Recipe,
                      policy: RecipePolicy) -> None:
    """Map the recipe's extra_docker_args onto compose keys; a mount for a container path that
    the standard set also mounts replaces it (compose rejects duplicate targets)."""
    args = list(recipe.extra_docker_args)
    while args:
        flag = args.pop(0)
        name, inline, value = flag.partition("=") if flag.startswith("--") else (flag, "", "")
        if name in _PRIVILEGED and not policy.allow_privileges:
            raise ConfigError(recipe.source, "extra_docker_args",
                              f"{name} gives the container power over the host",
                              allowed="set recipe_allow_privileges: true in the host's data to "
                              "trust this recipe with it")
        if name == "--privileged":
            service["privileged"] = True
            continue
        if name not in _FLAG_KEYS:
            raise ConfigError(recipe.source, "extra_docker_args", f"unsupported docker flag {name!r}",
                              allowed=", ".join(SUPPORTED))
        if not inline:
            if not args:
                raise ConfigError(recipe.source, "extra_docker_args", f"{name} needs a value")
            value = args.pop(0)
        _FLAG_KEYS[name](service, volumes, value, recipe, policy)


def _add_volume(service: dict, volumes: dict[str, str], value: str, recipe: Recipe,
                policy: RecipePolicy) -> None:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ConfigError(recipe.source, "extra_docker_args",
                          f"volume {value!r} is not SOURCE:TARGET[:MODE]")
    source = posixpath.normpath(parts[0])
    if not parts[0].startswith("/"):
        raise ConfigError(recipe.source, "extra_docker_args",
                          f"volume {value!r}: the host side must be an absolute path")
    if not any(source == root or source.startswith(root.rstrip("/") + "/") for root in policy.mount_roots):
        raise ConfigError(recipe.source, "extra_docker_args",
                          f"volume {value!r} mounts {source}, outside the service home and the "
                          "model store", allowed=f"paths below {', '.join(policy.mount_roots)}, or "
                          "add it to recipe_allowed_mounts in the host's data")
    volumes[parts[1]] = source + (f":{parts[2]}" if len(parts) == 3 else "")


def _add_env(service: dict, volumes: dict, value: str, recipe: Recipe, policy: RecipePolicy) -> None:
    key, sep, env_value = value.partition("=")
    if not sep:
        raise ConfigError(recipe.source, "extra_docker_args", f"environment {value!r} is not KEY=VALUE")
    service["environment"][key] = env_value


def _add_ulimit(service: dict, volumes: dict, value: str, recipe: Recipe, policy: RecipePolicy) -> None:
    name, _, limits = value.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        service["ulimits"][name] = {"soft": int(soft), "hard": int(hard or soft)}
    except ValueError as exc:
        raise ConfigError(recipe.source, "extra_docker_args",
                          f"ulimit {value!r} is not NAME=SOFT[:HARD] with numbers") from exc


_Mapper = Callable[[dict, dict, str, Recipe, RecipePolicy], None]


def _append(key: str) -> _Mapper:
    def add(service: dict, volumes: dict, value: str, recipe: Recipe, policy: RecipePolicy) -> None:
        service.setdefault(key, []).append(value)
    return add


def _set(key: str, convert: Callable[[str], Any] = str) -> _Mapper:
    def add(service: dict, volumes: dict, value: str, recipe: Recipe, policy: RecipePolicy) -> None:
        try:
            service[key] = convert(value)
        except ValueError as exc:
            raise ConfigError(recipe.source, "extra_docker_args",
                              f"{key} value {value!r} is not valid") from exc
    return add


_FLAG_KEYS: dict[str, _Mapper] = {
    "-v": _add_volume, "--volume": _add_volume,
    "-e": _add_env, "--env": _add_env,
    "--ulimit": _add_ulimit,
    "--shm-size": _set("shm_size"),
    "--cap-add": _append("cap_add"),
    "--device": _append("devices"),
    "--security-opt": _append("security_opt"),
    "--memory": _set("mem_limit"),
    "--memory-swap": _set("memswap_limit"),
    "--pids-limit": _set("pids_limit", int),
}
