"""A deploy file that runs one task on pyinfra's @fake connector and keeps what it would send.

``SPARKDEPLOY_CAPTURE_TASK`` names the task (``tasks.sshd.sshd_hardening``); every uploaded file
lands under ``$SPARKDEPLOY_CAPTURE/files/<remote path>`` and every command, one JSON string a
line, in ``$SPARKDEPLOY_CAPTURE/commands``. Nothing runs anywhere: the fake host answers from
data ``fake_responses``.
"""

import importlib
import json
import os
from pathlib import Path

from pyinfra.api.util import get_file_io
from pyinfra.connectors.fake import FakeConnector

_OUT = Path(os.environ["SPARKDEPLOY_CAPTURE"])
_run_shell_command = FakeConnector.run_shell_command


def _put_file(self, filename_or_io, remote_filename, *args, **kwargs):
    with get_file_io(filename_or_io, mode="rb") as source:
        data = source.read()
    target = _OUT / "files" / remote_filename.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return True


def _record(self, command, *args, **kwargs):
    status, output = _run_shell_command(self, command, *args, **kwargs)
    with open(_OUT / "commands", "a") as log:
        log.write(json.dumps(self.executed_commands[-1]) + "\n")
    return status, output


FakeConnector.put_file = _put_file
FakeConnector.run_shell_command = _record
module, _, function = os.environ["SPARKDEPLOY_CAPTURE_TASK"].rpartition(".")
getattr(importlib.import_module(module), function)(_sudo=True)
