"""Benchmark records: what was measured and on what, kept per host and model, compared run to run.

A record is one endpoint's run: the host, the served model, the route (``direct`` to vLLM, or
``proxy HOST``), when, the recipe, the image and its digest, vLLM's ``system_fingerprint``, the
tool and the sizes, then one measurement per prompt size, generation size and concurrency. It
is built from those fields only, so no key or password can reach it. Records live in
``bench_results_dir/<host>/<model>/<route>-<date>.json``, one file per run; the newest earlier
run of the same host, model and route is the one a new run is compared with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparkdeploy.bench_tool import Measurement
from sparkdeploy.errors import ConfigError

# (record attribute, column heading, True when a higher value is better)
METRICS = (("prefill_tps", "prefill tok/s", True), ("decode_tps", "decode tok/s", True),
           ("ttft_ms", "TTFT ms", False))
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BenchRecord:
    """One run against one endpoint (see the module docstring)."""

    host: str
    model: str
    route: str
    date: str
    recipe: str
    image: str
    image_digest: str | None
    image_id: str | None
    system_fingerprint: str | None
    tool: str
    sizes: dict[str, Any]
    measurements: tuple[Measurement, ...]
    # what could not be found out (the host unreachable over SSH, ...), for the reader
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> BenchRecord:
        values = json.loads(text)
        values["measurements"] = tuple(Measurement(**m) for m in values.get("measurements") or [])
        values["notes"] = tuple(values.get("notes") or ())
        return cls(**values)

    @property
    def label(self) -> str:
        return f"{self.host} {self.model} ({self.route})"


@dataclass(frozen=True)
class Change:
    """One metric of one test, against the previous run; ``regressed`` beyond the threshold."""

    key: tuple[int, int, int]
    metric: str
    before: float
    after: float
    regressed: bool

    @property
    def fraction(self) -> float:
        return (self.after - self.before) / self.before


def record_dir(results_dir: Path, host: str, model: str) -> Path:
    """Where a host's records of one model live."""
    return results_dir / _safe(host) / _safe(model)


def save_record(results_dir: Path, record: BenchRecord) -> Path:
    """Write ``record`` as a new file (mode 0644: it holds no secret); return its path."""
    folder = record_dir(results_dir, record.host, record.model)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = record.date.replace(":", "").replace("-", "")
    path = folder / f"{_safe(record.route)}-{stamp}.json"
    for attempt in range(2, 100):
        if not path.exists():
            break
        path = folder / f"{_safe(record.route)}-{stamp}-{attempt}.json"
    path.write_text(record.to_json() + "\n")
    path.chmod(0o644)
    return path


def history(results_dir: Path, host: str, model: str, route: str) -> list[BenchRecord]:
    """Every stored run of ``host``'s ``model`` over ``route``, oldest first."""
    folder = record_dir(results_dir, host, model)
    found = [(_read(path), path.stat().st_mtime_ns) for path in folder.glob(f"{_safe(route)}-*.json")]
    found.sort(key=lambda pair: (pair[0].date, pair[1]))  # two runs in one second: file order
    return [record for record, _ in found if record.route == route]


def _read(path: Path) -> BenchRecord:
    try:
        return BenchRecord.from_json(path.read_text())
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(str(path), None, f"not a benchmark record ({exc}): move it away or fix it") from exc


def compare(previous: BenchRecord, current: BenchRecord, threshold: float) -> list[Change]:
    """Each metric of each test both runs measured; a throughput that fell, or a time to first
    token that rose, by more than ``threshold`` (a fraction) is a regression."""
    before = {m.key: m for m in previous.measurements}
    changes = []
    for measurement in current.measurements:
        old = before.get(measurement.key)
        if old is None:
            continue
        for metric, _, higher_is_better in METRICS:
            was, now = getattr(old, metric), getattr(measurement, metric)
            if not was or now is None:
                continue
            change = (now - was) / was
            regressed = -change > threshold if higher_is_better else change > threshold
            changes.append(Change(measurement.key, metric, was, now, regressed))
    return changes


def what_changed(previous: BenchRecord, current: BenchRecord) -> list[str]:
    """What differs between the two runs besides the numbers: recipe, image, server build, tool."""
    lines = []
    for attribute in ("recipe", "image", "image_digest", "system_fingerprint", "tool", "sizes"):
        was, now = getattr(previous, attribute), getattr(current, attribute)
        if was != now:
            lines.append(f"{attribute}: {_short(was)} -> {_short(now)}")
    return lines


def format_table(record: BenchRecord, changes: Sequence[Change], previous: BenchRecord | None) -> str:
    """The run's numbers per test, each with its change against the previous run."""
    by_metric = {(change.key, change.metric): change for change in changes}
    headers = ["prompt", "gen", "conc", *(heading for _, heading, _ in METRICS)]
    rows = []
    for measurement in sorted(record.measurements, key=lambda m: m.key):
        cells = [str(measurement.prompt_tokens), str(measurement.generation_tokens),
                 str(measurement.concurrency)]
        for metric, _, _ in METRICS:
            cells.append(_cell(getattr(measurement, metric), by_metric.get((measurement.key, metric))))
        rows.append(cells)
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [f"{record.label}  {record.date}",
             f"  recipe {record.recipe}, image {record.image} ({_short(record.image_digest)}), "
             f"system_fingerprint {record.system_fingerprint or '(none reported)'}, {record.tool}"]
    lines += ["  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
              for row in [headers, *rows]]
    if previous is None:
        lines.append("  first run: nothing to compare with")
    else:
        lines.append(f"  compared with {previous.date}")
        lines += [f"  changed since: {line}" for line in what_changed(previous, record)]
    lines += [f"  note: {note}" for note in record.notes]
    for change in (change for change in changes if change.regressed):
        prompt, generation, concurrency = change.key
        lines.append(f"  REGRESSION: {change.metric} at prompt {prompt}, gen {generation}, concurrency "
                     f"{concurrency}: {change.before:.1f} -> {change.after:.1f} ({change.fraction:+.1%})")
    return "\n".join(lines)


def _cell(value: float | None, change: Change | None) -> str:
    if value is None:
        return "-"
    text = f"{value:.1f}"
    if change is not None:
        text += f" ({change.fraction:+.1%}{' !' if change.regressed else ''})"
    return text


def _short(value: Any) -> str:
    if value is None:
        return "unknown"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:19] if text.startswith("sha256:") else text


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_") or "_"
