"""earlyoom's command line for the version a host has, from host data.

earlyoom exits 13 on an option it does not know, and Ubuntu 24.04 ships 1.7, which has no
``--ignore``, ``--ignore-root-user`` or ``--sort-by-rss`` (added in 1.8). CUDA allocations on
GB10 are not in a process's RSS, so the vLLM processes are named as preferred victims instead of
trusting the default ranking.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sparkdeploy.errors import ConfigError

DEFAULT_FILE = "/etc/default/earlyoom"
# The oldest release the deploy supports (Ubuntu 24.04, Debian 12); assumed when unknown.
OLDEST_VERSION = (1, 7)
_OPTIONS_1_7 = {
    "-m", "-s", "-M", "-S", "-n", "-N", "-g", "-d", "-r", "-p", "--prefer", "--avoid", "--dryrun",
}
_OPTIONS_ADDED = {(1, 8): {"--ignore", "--ignore-root-user", "--sort-by-rss"}}
_WITH_VALUE = {"-m", "-s", "-M", "-S", "-N", "-r", "--prefer", "--avoid", "--ignore"}
_VERSION = re.compile(r"^(?:\d+:)?(\d+)\.(\d+)")
# Process names are matched against /proc/PID/comm; no quoting survives both /bin/sh (the
# init script sources the file) and systemd's EnvironmentFile, so keep patterns plain.
_PATTERN = re.compile(r"^[^\s'\"\\`$]+\Z")
# A '$' that no shell or systemd would expand (end of word, or before a regex character).
_WORD = re.compile(r"^(?:[^\s'\"\\`$]|\$(?![A-Za-z0-9_{(]))+\Z")


def parse_version(deb_version: str | None) -> tuple[int, int] | None:
    match = _VERSION.match(deb_version or "")
    return (int(match[1]), int(match[2])) if match else None


def supported_options(version: tuple[int, int]) -> set[str]:
    options = set(_OPTIONS_1_7)
    for since, added in _OPTIONS_ADDED.items():
        if version >= since:
            options |= added
    return options


def arguments(data: Mapping[str, Any], version: tuple[int, int] | None, source: str) -> list[str]:
    """EARLYOOM_ARGS as a list; options the version lacks raise ConfigError."""
    version = version or OLDEST_VERSION
    term = _count(data, "earlyoom_memory_term_kib", source, minimum=1)
    kill = _count(data, "earlyoom_memory_kill_kib", source, minimum=1)
    if kill > term:
        raise ConfigError(source, "earlyoom_memory_kill_kib",
                          f"{kill} KiB is above the SIGTERM floor ({term} KiB)",
                          allowed="at most earlyoom_memory_term_kib")
    swap = _count(data, "earlyoom_swap_percent", source)
    if swap > 100:
        raise ConfigError(source, "earlyoom_swap_percent", f"{swap} is not a percentage",
                          allowed="0 to 100 (100 ignores swap)")
    args = [
        "-r", str(_count(data, "earlyoom_report_interval", source)),
        "-s", str(swap),
        "-M", f"{term},{kill}",
        "--avoid", _alternation(data, "earlyoom_avoid", source),
        "--prefer", _alternation(data, "earlyoom_prefer", source),
    ]
    return args + _extra(data, version, source)


def default_file_value(args: Sequence[str]) -> str:
    """The value of EARLYOOM_ARGS (inside double quotes in /etc/default/earlyoom)."""
    return " ".join(args)


def _alternation(data: Mapping[str, Any], key: str, source: str) -> str:
    names = data.get(key)
    if not isinstance(names, (list, tuple)) or not names:
        raise ConfigError(source, key, f"{names!r} is not a list of process-name patterns",
                          allowed="a non-empty list such as ['sshd', 'dockerd']")
    for name in names:
        if not isinstance(name, str) or not _PATTERN.match(name):
            raise ConfigError(source, key, f"{name!r} cannot be passed through /etc/default/earlyoom",
                              allowed="a regex without spaces, quotes, backslashes or '$' "
                              "(write [.] for a literal dot)")
        try:
            re.compile(name)
        except re.error as exc:
            raise ConfigError(source, key, f"{name!r} is not a regular expression: {exc}") from exc
    return "^(" + "|".join(names) + ")$"


def _extra(data: Mapping[str, Any], version: tuple[int, int], source: str) -> list[str]:
    extra = data.get("earlyoom_extra_args") or []
    if not isinstance(extra, (list, tuple)):
        raise ConfigError(source, "earlyoom_extra_args", f"{extra!r} is not a list of arguments")
    supported = supported_options(version)
    expects_value = False
    for arg in extra:
        if not isinstance(arg, str) or not _WORD.match(arg):
            raise ConfigError(source, "earlyoom_extra_args",
                              f"{arg!r} cannot be passed through /etc/default/earlyoom",
                              allowed="words without spaces, quotes, backslashes or $NAME")
        if expects_value:
            expects_value = False
            continue
        if arg not in supported:
            raise ConfigError(
                source, "earlyoom_extra_args",
                f"{arg} is not an option of earlyoom {'.'.join(map(str, version))} "
                "(it exits 13 on unknown options)",
                allowed=", ".join(sorted(supported - {"--avoid", "--prefer", "-M", "-s", "-r"})))
        expects_value = arg in _WITH_VALUE
    if expects_value:
        raise ConfigError(source, "earlyoom_extra_args", f"{extra[-1]} needs a value")
    return list(extra)


def _count(data: Mapping[str, Any], key: str, source: str, minimum: int = 0) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(source, key, f"{value!r} is not a whole number",
                          allowed=f"an integer >= {minimum}")
    return value


def shell_words(value: str) -> list[str]:
    """How systemd and /bin/sh split EARLYOOM_ARGS (plain words: the same for both)."""
    return shlex.split(value)
