"""requirements.lock: what scripts/bootstrap installs, exact and hashed, covering pyproject.toml."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from sparkdeploy.data import PROJECT_ROOT

LOCK = PROJECT_ROOT / "requirements.lock"
_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+?)(?:\s*;.*)?\s*\\?$")


def locked() -> dict[str, tuple[Version, list[str]]]:
    """Package -> (pinned version, its hashes), parsed from the lock's requirement lines."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash="):
            assert current, f"a hash before any requirement: {line}"
            entries[current][1].append(stripped.removeprefix("--hash=").rstrip(" \\"))
            continue
        match = _ENTRY.match(stripped)
        assert match, f"requirements.lock: not an exact pin: {line!r}"
        current = canonicalize_name(match["name"])
        entries[current] = (Version(match["version"]), [])
    return entries


def declared() -> list[Requirement]:
    """pyproject.toml's dependencies, its test extra (what bootstrap installs) and build backend."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    texts = [*project["project"]["dependencies"], *project["project"]["optional-dependencies"]["test"],
             *project["build-system"]["requires"]]
    return [Requirement(text) for text in texts]


def test_every_declared_dependency_is_pinned_within_its_range():
    entries = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{requirement} is not in requirements.lock (run scripts/lock)"
        assert requirement.specifier.contains(entries[name][0], prereleases=True), (
            f"requirements.lock pins {name}=={entries[name][0]}, outside {requirement}")


@pytest.mark.parametrize("tool", ["pytest", "pytest-testinfra", "ruff", "ssh-audit", "setuptools"])
def test_the_tools_scripts_test_and_bootstrap_use_are_locked(tool):
    assert tool in locked()


def test_every_pin_has_sha256_hashes():
    for name, (_, hashes) in locked().items():
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", value) for value in hashes), name


def test_the_lock_is_closed_over_what_its_packages_require():
    """Every requirement of a locked package (as installed here, same version) is locked too, so
    bootstrap's --no-deps install is complete."""
    entries = locked()
    for name, (version, _) in entries.items():
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(distribution.version) != version:
            continue
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            assert canonicalize_name(requirement.name) in entries, f"{name} needs {requirement}"


def test_bootstrap_installs_from_the_lock_with_hashes_required():
    script = (PROJECT_ROOT / "scripts" / "bootstrap").read_text()
    assert "--require-hashes --no-deps -r requirements.lock" in script
    assert "--no-build-isolation" in script
