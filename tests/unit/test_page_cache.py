"""The cron schedule of the periodic page-cache drop and the cron file as rendered."""

from __future__ import annotations

import pytest
from jinja2 import Environment, StrictUndefined

from sparkdeploy import page_cache
from sparkdeploy.data import PROJECT_ROOT, documented_defaults
from sparkdeploy.errors import ConfigError

SOURCE = "host 'h' data"


@pytest.mark.parametrize(("value", "expected"), [
    ("0 */4 * * *", "0 */4 * * *"),
    ("  30  2 * * 1-5 ", "30 2 * * 1-5"),
    ("0 0,12 1 jan,jul sun", "0 0,12 1 jan,jul sun"),
    ("@hourly", "@hourly"),
    ("", None),
])
def test_schedules(value, expected):
    assert page_cache.cron_schedule(value, SOURCE) == expected


@pytest.mark.parametrize("value", ["every 4 hours", "0 */4 * *", "0 */4 * * * root", "@often", 4, None])
def test_bad_schedules(value):
    with pytest.raises(ConfigError, match="page_cache_drop_schedule"):
        page_cache.cron_schedule(value, SOURCE)


def test_the_default_is_every_four_hours_and_the_file_name_has_no_dot():
    default = documented_defaults()["page_cache_drop_schedule"]
    assert page_cache.cron_schedule(default, SOURCE) == "0 */4 * * *"
    assert "." not in page_cache.CRON_PATH.rsplit("/", 1)[1]


def test_the_cron_file_sets_path_and_runs_the_drop_as_root():
    template = PROJECT_ROOT / "templates/etc/cron.d/drop-caches.j2"
    text = Environment(undefined=StrictUndefined, keep_trailing_newline=True).from_string(
        template.read_text()).render(schedule="0 */4 * * *", command=page_cache.DROP_COMMAND)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == ["SHELL=/bin/sh", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                     "0 */4 * * * root sync && echo 3 > /proc/sys/vm/drop_caches"]
    assert text.endswith("\n") and "%" not in text
