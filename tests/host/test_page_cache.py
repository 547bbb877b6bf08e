"""The periodic page-cache drop in /etc/cron.d."""

from __future__ import annotations

import pytest

from sparkdeploy import page_cache


def _job_lines(text):
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_cron_file_is_one_cron_reads(host, host_data):
    if not page_cache.cron_schedule(host_data["page_cache_drop_schedule"], "host data"):
        pytest.skip("the periodic drop is turned off in this host's data")
    cron = host.file(page_cache.CRON_PATH)
    assert (cron.user, cron.group, cron.mode) == ("root", "root", 0o644)
    assert "." not in page_cache.CRON_PATH.rsplit("/", 1)[1]
    assert cron.content_string.endswith("\n")


def test_the_job_runs_the_drop_as_root_on_schedule_with_a_path(host, host_data):
    schedule = page_cache.cron_schedule(host_data["page_cache_drop_schedule"], "host data")
    if not schedule:
        assert not host.file(page_cache.CRON_PATH).exists
        return
    lines = _job_lines(host.file(page_cache.CRON_PATH).content_string)
    assert any(line.startswith("PATH=") and "/usr/sbin" in line for line in lines)
    assert f"{schedule} root {page_cache.DROP_COMMAND}" in lines


def test_cron_is_running(host):
    assert host.service("cron").is_running


@pytest.mark.requires("host_can_write_sysctl")
def test_the_jobs_command_drops_the_cache(host):
    assert host.run(f"sh -c '{page_cache.DROP_COMMAND}'").rc == 0
