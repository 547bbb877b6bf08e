"""Host basics every other check and the deploy rely on: systemd runs the host, sudo works."""


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_commands_run_as_root_through_sudo(host):
    assert host.check_output("id -u") == "0"


def test_no_unit_failed(host):
    failed = host.check_output("systemctl list-units --state=failed --plain --no-legend")
    assert failed == ""
