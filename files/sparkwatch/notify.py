"""One journal line per event, and the operator's notification hook.

The unit runs with systemd's ``SyslogLevelPrefix``: a ``<N>`` prefix sets the journal priority.
The hook (a webhook URL or a command, from secrets.json) gets the event as JSON: POSTed to the
URL, or on the command's stdin with SPARKWATCH_EVENT and SPARKWATCH_MESSAGE in its environment.
Neither the URL nor the command is ever written to the journal: they may carry a token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

INFO, WARNING, ERROR = 6, 4, 3
_HOOK_TIMEOUT = 20.0


def journal(priority: int, line: str) -> None:
    sys.stdout.write(f"<{priority}>{line}\n")
    sys.stdout.flush()


def event(secrets: dict[str, Any], host: str, kind: str, subject: str, message: str,
          priority: int = WARNING) -> None:
    """Log ``message`` and hand it to the hook; a failing hook is logged, never raised."""
    journal(priority, message)
    payload = {"host": host, "event": kind, "subject": subject, "message": message,
               "at": time.time()}
    url, command = secrets.get("notify_url"), secrets.get("notify_command")
    try:
        if url:
            request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=_HOOK_TIMEOUT):
                pass
        if command:
            env = {**os.environ, "SPARKWATCH_EVENT": kind, "SPARKWATCH_MESSAGE": message}
            subprocess.run(["/bin/sh", "-c", command], input=json.dumps(payload) + "\n", text=True,
                           env=env, timeout=_HOOK_TIMEOUT, check=True, capture_output=True)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        journal(ERROR, f"the notification hook failed ({type(exc).__name__}); event was: {kind}")
