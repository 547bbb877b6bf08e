"""Fresh sandbox -> deploy -> host checks green -> a second deploy changes nothing -> no drift.

The tests run in this order and share one first deploy (see conftest), as CI runs them after
``sparkdeploy sandbox up --fresh``.
"""

from __future__ import annotations

import subprocess
import sys

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.sandbox.state import HOST_NAME


def test_first_deploy_succeeds(first_deploy):
    assert first_deploy.returncode == 0, first_deploy.failure_summary()
    assert not first_deploy.failures


def test_host_checks_pass(converged):
    suite = subprocess.run([sys.executable, "-m", "pytest", "tests/host", "-q",
                            "-p", "no:cacheprovider", f"--inventory-host={HOST_NAME}"],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]


def test_second_deploy_changes_nothing(converged, deploy):
    second = deploy()
    assert second.returncode == 0, second.failure_summary()
    assert second.changes == {}, f"a converged deploy still changed: {second.changes}"


def test_drift_check_is_clean(converged, drift_check):
    check = drift_check()
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{HOST_NAME}: no drift" in check.stdout
