"""earlyoom's arguments per version, and their trip through /etc/default/earlyoom."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from sparkdeploy import earlyoom
from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError

SOURCE = "host 'h' data"


def data(**overrides):
    return {**documented_defaults(), **overrides}


def test_default_arguments_spare_the_system_and_prefer_vllm():
    args = earlyoom.arguments(data(), (1, 7), SOURCE)
    assert args == [
        "-r", "3600", "-s", "100", "-M", "4194304,2097152",
        "--avoid", "^(sshd.*|systemd.*|dockerd|containerd.*|earlyoom|rpc[.].*)$",
        "--prefer", "^(VLLM::.*|vllm)$",
    ]


@pytest.mark.parametrize("deb_version", ["1.7-2", "1.7-1+b1", "1.8.2-1", "1:1.9.0-1"])
def test_versions_parse(deb_version):
    assert earlyoom.parse_version(deb_version) >= (1, 7)


def test_unknown_version_is_none():
    assert earlyoom.parse_version("(none)") is None
    assert earlyoom.parse_version(None) is None


def test_ignore_is_refused_on_1_7_and_accepted_on_1_8():
    extra = {"earlyoom_extra_args": ["--ignore", "^(Xorg)$"]}
    with pytest.raises(ConfigError, match=r"not an option of earlyoom 1\.7"):
        earlyoom.arguments(data(**extra), (1, 7), SOURCE)
    assert earlyoom.arguments(data(**extra), (1, 8), SOURCE)[-2:] == ["--ignore", "^(Xorg)$"]
    with pytest.raises(ConfigError, match=r"earlyoom 1\.7"):
        earlyoom.arguments(data(**extra), None, SOURCE)


def test_options_with_values_need_one():
    with pytest.raises(ConfigError, match="needs a value"):
        earlyoom.arguments(data(earlyoom_extra_args=["-N"]), (1, 7), SOURCE)
    assert earlyoom.arguments(data(earlyoom_extra_args=["-n", "-g"]), (1, 7), SOURCE)[-2:] == ["-n", "-g"]


@pytest.mark.parametrize("pattern", ["ssh d", "it's", "a\\.b", "x$", "("])
def test_patterns_that_cannot_pass_through_the_file_are_refused(pattern):
    with pytest.raises(ConfigError, match="earlyoom_avoid"):
        earlyoom.arguments(data(earlyoom_avoid=[pattern]), (1, 7), SOURCE)


def test_kill_floor_may_not_exceed_term_floor():
    with pytest.raises(ConfigError, match="earlyoom_memory_kill_kib"):
        earlyoom.arguments(data(earlyoom_memory_kill_kib=8388608), (1, 7), SOURCE)


def test_sourced_by_sh_the_value_splits_into_the_same_arguments(tmp_path):
    args = earlyoom.arguments(data(), (1, 7), SOURCE)
    default_file = tmp_path / "earlyoom"
    default_file.write_text(f'EARLYOOM_ARGS="{earlyoom.default_file_value(args)}"\n')
    script = f'set -f; . {shlex.quote(str(default_file))}; for a in $EARLYOOM_ARGS; do echo "$a"; done'
    words = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert words.splitlines() == args
