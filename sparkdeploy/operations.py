"""pyinfra operations for states no built-in operation expresses.

Like pyinfra's own operations they read facts at both prepare and execution time and yield
commands only when the host differs, so a converged host reports no change.
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import OperationError, operation
from pyinfra.facts.files import FileContents
from pyinfra.operations import files

from sparkdeploy import daemon_json


@operation()
def docker_nvidia_runtime(path: str = daemon_json.PATH, user: str = "root", group: str = "root",
                          mode: str = "0644"):
    """
    Add ``runtimes.nvidia`` to Docker's daemon.json, keeping every other key as it is.

    + path: the daemon.json to edit
    + user: owner of the file
    + group: group of the file
    + mode: permissions of the file

    The file is rewritten only when the runtime entry is missing or points elsewhere; a file
    that already has it keeps its bytes (only owner and mode are enforced).

    **Example:**

    .. code:: python

        docker_nvidia_runtime(name="Register the NVIDIA runtime with Docker")
    """
    lines = host.get_fact(FileContents, path=path)
    try:
        config = daemon_json.parse(None if lines is None else "\n".join(lines))
    except daemon_json.DaemonJsonError as exc:
        raise OperationError(str(exc)) from exc
    if daemon_json.has_nvidia_runtime(config):
        yield from files.file._inner(path=path, user=user, group=group, mode=mode)
        return
    merged = daemon_json.with_nvidia_runtime(config)
    yield from files.put._inner(src=StringIO(daemon_json.render(merged)), dest=path,
                                user=user, group=group, mode=mode)
