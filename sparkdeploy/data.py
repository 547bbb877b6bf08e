"""Host data as the deploy sees it, checked against the defaults in ``group_data/all.py``.

pyinfra merges ``--data``, host, group and global data without looking at types; a string where
an integer belongs would only fail deep inside a template or on the host. Checking every host's
data against the type of its documented default turns that into an error before any change.
"""

from __future__ import annotations

import runpy
import types
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from sparkdeploy.errors import ConfigError, type_name
from sparkdeploy.secret_values import SuppliedSecret

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = PROJECT_ROOT / "group_data" / "all.py"
# Keys holding a secret: never shown in a message, supplied as a string or a SuppliedSecret.
SECRET_KEYS = ("vllm_api_key", "cluster_ssh_key", "model_hub_token", "proxy_master_key",
               "proxy_db_password", "watchdog_notify_url", "watchdog_notify_command",
               "power_cycle_command", "relay_api_key")
# What a key whose default is None holds when set (a None default cannot say).
UNSET_DEFAULT_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("service_home", "recipe", "vllm_address", "cluster_group",
                     "upstream_checkout_dir", "verify_vllm_url", "model_revision",
                     "model_hub_endpoint", "model_pip_index_url", "proxy_client_url", "relay_client_url",
                     "relay_image", "bench_tokenizer", "bench_corpus"), (str,)),
    **dict.fromkeys(("cluster_link_addresses", "sshd_key_login_users"), (list, tuple)),
    "gpu_clock_limit_mhz": (int,),
    "vllm_memory_gib": (int, float),
    **dict.fromkeys(SECRET_KEYS, (str, SuppliedSecret)),
}


@cache
def documented_defaults() -> dict[str, Any]:
    """The module-level values of group_data/all.py, the way pyinfra reads them."""
    values = runpy.run_path(str(DEFAULTS_FILE))
    return {
        key: value for key, value in values.items()
        if not key.startswith("_") and not isinstance(value, types.ModuleType)
    }


def check_types(host_name: str, data: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for a data value whose type differs from its default's."""
    for key, default in documented_defaults().items():
        if key not in data or (data[key] is None and default is None):
            continue
        value = data[key]
        if default is None:
            if not isinstance(value, UNSET_DEFAULT_TYPES[key]) or isinstance(value, bool):
                shown = type_name(value) if key in SECRET_KEYS else f"{type_name(value)} {value!r}"
                raise ConfigError(
                    f"host {host_name!r} (inventory.py, group_data/ or --data)", key,
                    f"expected None or {type_name(UNSET_DEFAULT_TYPES[key][0]())}, got {shown}",
                )
            continue
        if not _same_kind(default, value):
            raise ConfigError(
                f"host {host_name!r} (inventory.py, group_data/ or --data)", key,
                f"expected {type_name(default)} like the default in group_data/all.py, "
                f"got {type_name(value)} {value!r}",
            )


def _same_kind(default: object, value: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def service_home(data: Mapping[str, Any]) -> str:
    """Home directory of the service user."""
    return data.get("service_home") or f"/home/{data['service_user']}"


def upstream_checkout_dir(data: Mapping[str, Any]) -> str:
    """Where the eugr/spark-vllm-docker checkout lives (mods are read from it): root's, outside
    the service user's home, because root runs its build script."""
    return data.get("upstream_checkout_dir") or "/opt/sparkdeploy/spark-vllm-docker"


def project_path(path: str) -> Path:
    """Resolve a data path relative to the project root (where inventory.py lives)."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate
