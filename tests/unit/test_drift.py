"""Drift reports from pyinfra's dry-run output: exit codes, tables, errors, and no secret shown."""

from __future__ import annotations

import json

from sparkdeploy.drift import (
    EXIT_CLEAN,
    EXIT_DRIFT,
    EXIT_ERROR,
    format_report,
    parse_dry_run,
    pyinfra_dry_command,
    redact,
)

HOSTS = ["pegasus.home.arpa", "sandbox"]


def plan(*operations: tuple[str, list[str], list[str]]) -> str:
    return json.dumps({"plan": [
        {"op_hash": f"h{index}", "name": name, "names": [name], "args": [],
         "hosts_with_change": changed, "hosts_with_conditional_change": conditional}
        for index, (name, changed, conditional) in enumerate(operations)], "results": None})


def test_the_dry_run_never_applies_and_keeps_change_detection_on():
    command = pyinfra_dry_command(["sandbox"])
    assert "--dry" in command and "--json" in command
    assert "-y" not in command and "--yes" not in command
    assert command[-2:] == ["--limit", "sandbox"]


def test_clean_when_no_operation_would_change_a_host():
    report = parse_dry_run(HOSTS, 0, plan(("Files | Place /a", [], [])), "")
    assert report.exit_code == EXIT_CLEAN
    assert format_report(report, secrets=[]) == "pegasus.home.arpa: no drift\n\nsandbox: no drift"


def test_conditional_changes_are_not_drift():
    report = parse_dry_run(HOSTS, 0, plan(("sshd | Reload sshd", [], ["sandbox"])), "")
    assert report.exit_code == EXIT_CLEAN


def test_drift_names_host_task_and_operation():
    report = parse_dry_run(HOSTS, 0, plan(
        ("Serving stack files | Place /opt/sparkdeploy/vllm/compose.yaml", ["sandbox"], []),
        ("earlyoom | Keep earlyoom enabled and running", ["sandbox"], []),
    ), "")
    assert report.exit_code == EXIT_DRIFT
    text = format_report(report, secrets=[])
    assert "pegasus.home.arpa: no drift" in text
    assert "sandbox: 2 operations would change" in text
    assert "Serving stack files  Place /opt/sparkdeploy/vllm/compose.yaml" in text
    assert "earlyoom" in text and "Keep earlyoom enabled and running" in text


def test_an_unreachable_host_is_an_error_not_clean():
    stderr = ("--> Connecting to hosts...\n"
              "    [pegasus.home.arpa] Could not connect (timed out)\n"
              "    [sandbox]           Connected\n")
    report = parse_dry_run(HOSTS, 1, plan(("Files | Place /a", [], [])), stderr)
    assert report.exit_code == EXIT_ERROR
    text = format_report(report, secrets=[])
    assert "pegasus.home.arpa: not checked: Could not connect (timed out)" in text
    assert "sandbox: no drift" in text


def test_invalid_data_is_an_error_for_every_host():
    stderr = ("--> An exception occurred in: deploy.py:\n"
              "sparkdeploy.errors.ConfigError: host 'sandbox' data: key 'x': bad\n"
              "--> pyinfra error: No hosts remaining!\n")
    report = parse_dry_run(HOSTS, 1, "", stderr)
    assert report.exit_code == EXIT_ERROR
    text = format_report(report, secrets=[])
    assert "sandbox: not checked" in text
    assert "ConfigError: host 'sandbox' data: key 'x': bad" in text


def test_printing_deploy_code_is_an_error():
    report = parse_dry_run(HOSTS, 0, "hello\n" + plan(), "")
    assert report.exit_code == EXIT_ERROR


def test_stored_secrets_never_reach_the_output():
    secret = "sk-not-for-your-terminal-0123456789"
    report = parse_dry_run(HOSTS, 1, "", f"ValueError: bad key {secret}\n")
    assert secret not in format_report(report, secrets=[secret])
    assert redact(f"key={secret}", [secret]) == "key=***"
