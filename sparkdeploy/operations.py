"""pyinfra operations for states no built-in operation expresses.

Like pyinfra's own operations they read facts at both prepare and execution time and yield
commands only when the host differs, so a converged host reports no change.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation
from pyinfra.facts.files import File, FileContents, Sha256File
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


@operation()
def secret_file(content: str, path: str, user: str = "root", group: str = "root",
                mode: str = "0600"):
    """
    Place a secret file: mode ``mode`` from its first byte, written by its owner, never shown.

    + content: the secret text (a final newline is added when missing)
    + path: where the file goes; its directory is created when missing
    + user: owner of the file, and the account that writes it
    + group: group of the file
    + mode: permissions of the file (owner-only, e.g. 0600)

    ``files.put`` would stage the content world-readable in ``/tmp``, create the file with the
    default mode before its chmod, print it under ``--diff``, and follow a symbolic link at
    ``path`` (a service user could point it at a root file). Here the content reaches the
    host on the command's stdin (never in its arguments or a staging file); ``user`` writes it
    under umask 077 to a new temporary file next to ``path`` and renames it over ``path``, so a
    link there is replaced, never followed, and the writer can reach only what it owns anyway.

    **Example:**

    .. code:: python

        secret_file(name="Place the proxy's secrets (secret)", content=env,
                    path="/opt/sparkdeploy/litellm/secrets.env", user="root", group="root")
    """
    text = content if content.endswith("\n") else content + "\n"
    current = host.get_fact(File, path=path)
    if (current and current["user"] == user and current["group"] == group
            and current["mode"] == int(mode.lstrip("0") or "0")
            and host.get_fact(Sha256File, path=path) == hashlib.sha256(text.encode()).hexdigest()):
        host.noop(f"secret file {path} is up to date")
        return
    # the content travels on stdin: written by pyinfra's connector, never part of the command
    yield StringCommand(secret_write_command(path, user, group, mode), _stdin=text)


def secret_write_command(path: str, user: str, group: str, mode: str) -> str:
    """The shell line :func:`secret_file` runs: stdin to a new umask-077 file renamed over
    ``path``, as ``user`` (root runs it as ``user`` through runuser)."""
    directory = posixpath.dirname(path)
    temporary = posixpath.join(directory, f".{posixpath.basename(path)}.XXXXXX")
    script = (f"mkdir -p {shlex.quote(directory)} && umask 077"
              f" && tmp=$(mktemp {shlex.quote(temporary)})"
              f' && {{ cat > "$tmp" && chgrp {shlex.quote(group)} "$tmp"'
              f' && chmod {shlex.quote(mode)} "$tmp" && mv -fT "$tmp" {shlex.quote(path)}'
              f' || {{ rm -f "$tmp"; exit 1; }}; }}')
    as_owner = "" if user == "root" else f"runuser -u {shlex.quote(user)} -- "
    return f"{as_owner}sh -c {shlex.quote(script)}"
