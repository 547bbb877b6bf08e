"""The ``bare`` sandbox (no Docker engine): the deploy installs Docker, then converges as usual.

Runs only against a bare sandbox; ``scripts/test`` starts one after the default flow
(``sparkdeploy sandbox up --variant bare --fresh``) and runs this file alone.
"""

from __future__ import annotations

import re

import pytest

from sparkdeploy.sandbox.state import load_state

_state = load_state()
pytestmark = pytest.mark.skipif(
    _state is None or _state.variant != "bare",
    reason="needs a bare sandbox (sparkdeploy sandbox up --variant bare --fresh)")


def test_the_bare_sandbox_has_no_docker(on_sandbox):
    assert on_sandbox("command -v docker dockerd || true").strip() == ""


def test_the_deploy_installs_docker_with_compose_v2(deploy, on_sandbox):
    # The first run may stop later, at images the stand-ins can only load into a running engine.
    deploy()
    assert "Docker version" in on_sandbox("docker --version")
    assert re.search(r"version v?2\.", on_sandbox("docker compose version"))
    assert on_sandbox("systemctl is-active docker").strip() == "active"


def test_with_the_stand_ins_loaded_it_converges(deploy, sparkdeploy, drift_check):
    installed = sparkdeploy("standins", "install")
    assert installed.returncode == 0, installed.stderr
    applied = deploy()
    assert applied.returncode == 0, applied.failure_summary()
    again = deploy()
    assert again.returncode == 0, again.failure_summary()
    assert again.changes == {}, f"a converged deploy still changed: {again.changes}"
    check = drift_check()
    assert check.returncode == 0, check.stdout + check.stderr
