"""Fetch one model revision into the Hugging Face cache, detached from the deploy's SSH session.

Shipped verbatim to each host by sparkdeploy (tasks/weights.py) and run as the service user with
the pinned hub client of its venv, so the cache layout is exactly what vLLM reads. Why each part:

- Detached (``start`` spawns ``run`` in its own session, output to a log file): a 60+ GB download
  outlives a dropped SSH connection; the next deploy attaches to it instead of starting another.
- One at a time (a lock in the run directory): two downloads would race for the same disk.
- Free space first: the revision's size from the hub's metadata, minus what the cache already
  holds, against the free bytes of the cache's filesystem; too little is an error naming both.
- Resumable: huggingface_hub 1.17 keeps ``blobs/<etag>.incomplete`` and resumes it with an HTTP
  Range request. Xet transfers are switched off because they restart files from zero.
- Bounded: after ``--timeout`` seconds it stops, keeping the partial files for the next run.
- Observable: ``status.json`` (state, bytes, rate, message) is rewritten every few seconds for the
  deploy to relay; gated repositories read the token from ``$HF_HOME/token``, never from argv.
- The file list is kept as ``trees/<commit>.json`` in the repository's cache folder (the format
  newer hub clients write themselves), so the deploy can tell a complete snapshot without network.

Usage: fetch_weights.py start|run --repo ORG/NAME [--revision REV] --cache-dir DIR --run-dir DIR
       --timeout SECONDS --run-id ID
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

STATUS_FILE = "status.json"
LOG_FILE = "fetch.log"
LOCK_FILE = "fetch.lock"
EXIT_NO_SPACE = 3
EXIT_TOO_LARGE = 4
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
EXIT_TIMEOUT = 124
_POLL_SECONDS = 2.0
_LOG_EVERY_SECONDS = 30.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("start", "run"))
    parser.add_argument("--repo", required=True)
    parser.add_argument("--revision", default=None)
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--timeout", required=True, type=int)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--max-weight-bytes", type=int, default=None,
                        help="refuse, before downloading, weights larger than this")
    parser.add_argument("--limit-reason", default="",
                        help="where --max-weight-bytes comes from, for the message")
    return parser.parse_args(argv)


def start(args: argparse.Namespace, argv: list[str]) -> int:
    """Spawn the worker in a new session with its output in the log file, then return."""
    args.run_dir.mkdir(parents=True, exist_ok=True)
    with (args.run_dir / LOG_FILE).open("ab") as log:
        subprocess.Popen([sys.executable, os.path.abspath(__file__), "run", *argv[1:]],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
    print(f"download of {args.repo} started; log: {args.run_dir / LOG_FILE}")
    return 0


class Status:
    """``status.json``, replaced atomically so a reader never sees half a file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.path = args.run_dir / STATUS_FILE
        self.fields: dict[str, Any] = {
            "run_id": args.run_id, "repo": args.repo, "revision": args.revision,
            "pid": os.getpid(), "started": time.time(), "timeout": args.timeout,
            "state": "checking", "commit": None, "total_bytes": None, "done_bytes": 0,
            "needed_bytes": None, "free_bytes": None, "bytes_per_second": None, "message": "",
        }

    def write(self, **changes: Any) -> None:
        self.fields.update(changes, updated=time.time())
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".status-")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.fields, handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)


def log(message: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), message, flush=True)


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size:.0f} B"
        size /= 1000
    return f"{size:.1f} TB"


def repo_folder(cache_dir: Path, repo: str) -> Path:
    return cache_dir / ("models--" + repo.replace("/", "--"))


def list_files(api: Any, repo: str, revision: str | None) -> tuple[str, dict[str, dict[str, Any]]]:
    """The revision's commit and its files: path -> size, git blob id, LFS sha256 and size."""
    from huggingface_hub.hf_api import RepoFile

    info = api.model_info(repo, revision=revision, files_metadata=True)
    siblings = info.siblings or []
    files: dict[str, dict[str, Any]] = {}
    if siblings and all(sibling.size is not None for sibling in siblings):
        for sibling in siblings:
            entry = {"size": sibling.size, "blob_id": sibling.blob_id}
            if sibling.lfs is not None:
                entry.update(lfs_sha256=sibling.lfs.sha256, lfs_size=sibling.lfs.size)
            files[sibling.rfilename] = entry
    else:
        for item in api.list_repo_tree(repo, revision=info.sha, recursive=True):
            if isinstance(item, RepoFile):
                entry = {"size": item.size, "blob_id": item.blob_id}
                if item.lfs is not None:
                    entry.update(lfs_sha256=item.lfs.sha256, lfs_size=item.lfs.size)
                files[item.path] = entry
    return info.sha, files


def blob_name(entry: dict[str, Any]) -> str:
    return entry.get("lfs_sha256") or entry["blob_id"]


def file_size(entry: dict[str, Any]) -> int:
    return entry.get("lfs_size") or entry["size"]


def bytes_present(folder: Path, files: dict[str, dict[str, Any]]) -> int:
    """Bytes of the revision already in the cache: finished blobs plus partial ones."""
    present = 0
    for entry in files.values():
        blob = folder / "blobs" / blob_name(entry)
        for candidate in (blob, blob.with_name(blob.name + ".incomplete")):
            try:
                present += min(candidate.stat().st_size, file_size(entry))
                break
            except FileNotFoundError:
                continue
    return present


def write_tree_cache(folder: Path, commit: str, files: dict[str, dict[str, Any]]) -> None:
    """The file list in huggingface_hub's tree-cache format, for the deploy's completeness check."""
    trees = folder / "trees"
    trees.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=trees, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump({"format_version": 1, "files": {path: files[path] for path in sorted(files)}},
                  handle, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, trees / f"{commit}.json")


def missing_files(folder: Path, commit: str, files: dict[str, dict[str, Any]]) -> list[str]:
    snapshot = folder / "snapshots" / commit
    missing = []
    for path, entry in files.items():
        try:
            if (snapshot / path).stat().st_size != file_size(entry):
                missing.append(path)
        except FileNotFoundError:
            missing.append(path)
    return missing


def write_ref(folder: Path, revision: str, commit: str) -> None:
    """Record which commit a branch or tag meant, as the hub client does (vLLM reads it offline)."""
    if revision == commit:
        return
    ref = folder / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=ref.parent, prefix=".ref-")
    with os.fdopen(fd, "w") as handle:
        handle.write(commit)
    os.chmod(tmp, 0o644)
    os.replace(tmp, ref)


def free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def run(args: argparse.Namespace) -> int:
    args.run_dir.mkdir(parents=True, exist_ok=True)
    lock = (args.run_dir / LOCK_FILE).open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another download is running (see {STATUS_FILE}); run {args.run_id} leaves it be")
        return 0

    status = Status(args)
    status.write()

    def stop(signum: int, _frame: Any) -> None:
        status.write(state="failed", message=f"stopped by signal {signum}; the partial download "
                     "is kept and the next deploy resumes it")
        log(status.fields["message"])
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    log(f"run {args.run_id}: fetching {args.repo} (revision {args.revision or 'default branch'}) "
        f"into {args.cache_dir}")

    from huggingface_hub import HfApi, snapshot_download

    folder = repo_folder(args.cache_dir, args.repo)
    try:
        commit, files = list_files(HfApi(), args.repo, args.revision)
    except Exception as exc:  # the hub's errors are many; the operator needs the message
        return fail(status, f"cannot read {args.repo} from the hub: {describe(exc)}")

    weights = sum(file_size(entry) for path, entry in files.items() if path.endswith(WEIGHT_SUFFIXES))
    if args.max_weight_bytes is not None and weights > args.max_weight_bytes:
        message = (f"the weights of {args.repo} are {weights / 2**30:.1f} GiB, more than vLLM's "
                   f"{args.max_weight_bytes / 2**30:.1f} GiB share of this host's memory "
                   f"({args.limit_reason or '--max-weight-bytes'}): the model cannot load here, so "
                   "nothing is downloaded")
        status.write(commit=commit, state="too_large", message=message)
        log(message)
        return EXIT_TOO_LARGE
    total = sum(file_size(entry) for entry in files.values())
    present = bytes_present(folder, files)
    needed, free = total - present, free_bytes(args.cache_dir)
    status.write(commit=commit, total_bytes=total, done_bytes=present, needed_bytes=needed,
                 free_bytes=free)
    log(f"commit {commit}: {len(files)} files, {human(total)}; {human(present)} already cached, "
        f"{human(needed)} to fetch, {human(free)} free")
    if needed > free:
        message = (f"not enough disk space for {args.repo}: the download needs {human(needed)} "
                   f"({needed} bytes) but only {human(free)} ({free} bytes) are free on the "
                   f"filesystem of {args.cache_dir}")
        status.write(state="no_space", message=message)
        log(message)
        return EXIT_NO_SPACE

    write_tree_cache(folder, commit, files)
    outcome: dict[str, BaseException | None] = {}

    def download() -> None:
        try:
            snapshot_download(args.repo, revision=commit, cache_dir=str(args.cache_dir))
            outcome["error"] = None
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=download, daemon=True)
    worker.start()
    status.write(state="downloading")
    deadline = status.fields["started"] + args.timeout
    last_bytes, last_time, last_log = present, time.time(), 0.0
    while worker.is_alive():
        worker.join(_POLL_SECONDS)
        now = time.time()
        done = bytes_present(folder, files)
        rate = max(0.0, (done - last_bytes) / max(now - last_time, 1e-6))
        last_bytes, last_time = done, now
        status.write(done_bytes=done, bytes_per_second=rate)
        if now - last_log >= _LOG_EVERY_SECONDS:
            log(f"{human(done)} of {human(total)} ({human(rate)}/s)")
            last_log = now
        if now > deadline and worker.is_alive():
            message = (f"stopped after {args.timeout} s (model_download_timeout) with "
                       f"{human(done)} of {human(total)}; the partial download is kept and the "
                       "next deploy resumes it")
            status.write(state="timeout", message=message)
            log(message)
            os._exit(EXIT_TIMEOUT)

    error = outcome.get("error")
    if error is not None:
        if type(error).__name__ in ("GatedRepoError", "RepositoryNotFoundError"):
            return fail(status, f"cannot download {args.repo}: {describe(error)}")
        return fail(status, f"download of {args.repo} interrupted: {describe(error)}; "
                    "the partial download is kept and the next deploy resumes it")
    missing = missing_files(folder, commit, files)
    if missing:
        return fail(status, f"download of {args.repo} finished but {len(missing)} file(s) are "
                    f"missing or of the wrong size: {', '.join(sorted(missing)[:5])}")
    write_ref(folder, args.revision or "main", commit)
    status.write(state="done", done_bytes=total, message=f"{args.repo} at {commit} is complete")
    log(status.fields["message"])
    return 0


def describe(exc: BaseException) -> str:
    """The error's class and its first lines (the hub's own explanation), without request ids."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(line for line in lines[:3] if not line.startswith("(Request ID"))
    hint = ""
    if type(exc).__name__ == "GatedRepoError":
        hint = " (a gated repository: accept its terms on the hub and supply model_hub_token)"
    elif type(exc).__name__ == "RepositoryNotFoundError":
        hint = " (check the recipe's model, or supply model_hub_token for a private repository)"
    return f"{type(exc).__name__}: {text[:400]}{hint}"


def fail(status: Status, message: str) -> int:
    status.write(state="failed", message=message)
    log(message)
    return 1


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.timeout <= 0:
        raise SystemExit("--timeout must be positive")
    return start(args, argv) if args.mode == "start" else run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
