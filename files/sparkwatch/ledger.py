"""What the watchdog and watcher remember between runs (each run is a short systemd job).

One JSON file per subject under the state directory, written atomically (temporary file,
fsync, rename), so a run killed mid-write leaves the previous state, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Record:
    """Consecutive failed checks, recent recoveries (epoch seconds), the last action, when an
    alert was last raised (one per window, not one per check) and the last pass."""

    failures: int = 0
    recoveries: list[float] = field(default_factory=list)
    last_action: dict[str, Any] | None = None
    alerted_at: float | None = None
    generated: float | None = None
    reason: str = ""
    checked_at: float | None = None  # the last pass that looked at the subject

    def recent(self, now: float, window: float) -> list[float]:
        return [moment for moment in self.recoveries if now - moment < window]


def path(state_dir: str, kind: str, subject: str) -> str:
    return os.path.join(state_dir, f"{kind}-{_UNSAFE.sub('_', subject)}.json")


def load(state_dir: str, kind: str, subject: str) -> Record:
    try:
        with open(path(state_dir, kind, subject), encoding="utf-8") as file:
            values = json.load(file)
    except (FileNotFoundError, ValueError):
        return Record()
    known = Record.__dataclass_fields__
    return Record(**{key: value for key, value in values.items() if key in known})


def save(state_dir: str, kind: str, subject: str, record: Record) -> None:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    target = path(state_dir, kind, subject)
    descriptor, temporary = tempfile.mkstemp(dir=state_dir, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(asdict(record), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
