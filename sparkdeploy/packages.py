"""Which of a deploy's packages a host lacks, from pyinfra's DebPackages fact."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def missing_packages(installed: Mapping[str, Iterable[str]], wanted: Iterable[str]) -> list[str]:
    """The entries of ``wanted`` (``name`` or ``name=version``) that are not installed as asked.

    The deploy refreshes apt's lists only when this is non-empty, so a converged host never
    runs ``apt-get update`` (which always counts as a change).
    """
    missing = []
    for package in wanted:
        name, _, version = package.partition("=")
        versions = set(installed.get(name) or ())
        if not versions or (version and version not in versions):
            missing.append(package)
    return missing
