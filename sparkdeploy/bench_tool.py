"""Running llama-benchy, the measuring tool, against one OpenAI-compatible endpoint.

llama-benchy runs as a child process of this Python (its event loop, prints and exits stay its
own) and writes its JSON report to a file; its progress lines are passed on as they come. The API
key reaches it through the environment, never its command line, which any local user can read
(``ps``): ``python -m sparkdeploy.bench_tool`` puts the key into llama-benchy's own arguments in
its memory only. It needs a tokenizer (a local ``tokenizer.json``: no hub download) and a text to
cut prompts from: llama-benchy's default book, or a local file served to it on loopback.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sparkdeploy.data import project_path
from sparkdeploy.errors import ConfigError

KEY_VARIABLE = "SPARKDEPLOY_BENCH_API_KEY"
_CORPUS_NAME = "corpus.txt"
_OUTPUT_TAIL_LINES = 15


@dataclass(frozen=True)
class BenchSettings:
    """A host's ``bench_*`` data: what to measure (llama-benchy's ``--pp``, ``--tg``,
    ``--concurrency``, ``--runs``), how long it may take, what a regression is, and the local
    files and folder it uses."""

    prompt_tokens: tuple[int, ...]
    generation_tokens: tuple[int, ...]
    concurrency: tuple[int, ...]
    runs: int
    timeout: int
    regression_threshold: float
    results_dir: Path
    # None: the served model's own tokenizer (from the host), llama-benchy's default book
    tokenizer: Path | None = None
    corpus: Path | None = None

    @classmethod
    def from_data(cls, host_name: str, data: Mapping[str, Any]) -> BenchSettings:
        """The host's values, checked; :class:`ConfigError` names the bad one."""
        source = f"host {host_name!r} data"
        threshold = data.get("bench_regression_threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise ConfigError(source, "bench_regression_threshold",
                              f"expected a fraction between 0 and 1 (0.1: a 10 % drop), got {threshold!r}")
        return cls(
            prompt_tokens=_positive_list(data, "bench_prompt_tokens", source),
            generation_tokens=_positive_list(data, "bench_generation_tokens", source),
            concurrency=_positive_list(data, "bench_concurrency", source),
            runs=_positive(data, "bench_runs", source),
            timeout=_positive(data, "bench_timeout", source),
            regression_threshold=float(threshold),
            results_dir=project_path(str(data["bench_results_dir"])),
            tokenizer=_local_file(data, "bench_tokenizer", source),
            corpus=_local_file(data, "bench_corpus", source),
        )

    def sizes(self) -> dict[str, Any]:
        """What the record keeps of the settings: what was measured."""
        return {"prompt_tokens": list(self.prompt_tokens), "generation_tokens": list(self.generation_tokens),
                "concurrency": list(self.concurrency), "runs": self.runs}


@dataclass(frozen=True)
class Measurement:
    """One llama-benchy test: a prompt size, a generation size and a concurrency level.

    Throughputs are totals over the concurrent requests (tokens/s); ``ttft_ms`` is the mean time
    from sending a request to its first token, as the client sees it."""

    prompt_tokens: int
    generation_tokens: int
    concurrency: int
    prefill_tps: float | None
    decode_tps: float | None
    decode_tps_per_request: float | None
    ttft_ms: float | None

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.prompt_tokens, self.generation_tokens, self.concurrency)


class BenchFailed(Exception):
    """llama-benchy did not produce a report; the message says why (its last output lines)."""


def tool_version() -> str:
    """``llama-benchy X.Y.Z``, for the record: another version may measure differently."""
    return f"llama-benchy {importlib.metadata.version('llama-benchy')}"


def run_llama_benchy(base_url: str, model: str, api_key: str | None, tokenizer: Path,
                     settings: BenchSettings, progress: Callable[[str], None]) -> list[Measurement]:
    """Measure ``model`` at ``base_url`` (the server root, without ``/v1``); each output line of
    llama-benchy goes to ``progress``. Raises :class:`BenchFailed`."""
    with tempfile.TemporaryDirectory(prefix="sparkdeploy-bench-") as workdir, \
            _corpus_url(settings.corpus) as corpus_url:
        report = Path(workdir) / "report.json"
        command = benchy_command(base_url, model, tokenizer, corpus_url, settings, report)
        env = {**os.environ, KEY_VARIABLE: api_key or "EMPTY", "HF_HUB_OFFLINE": "1",
               "PYTHONUNBUFFERED": "1"}
        if settings.corpus is not None:
            env["HOME"] = workdir  # llama-benchy caches the book by URL: a loopback port each time
        output = _run(command, env, settings.timeout, progress)
        if not report.exists():
            raise BenchFailed("llama-benchy wrote no report:\n" + "\n".join(output[-_OUTPUT_TAIL_LINES:]))
        return parse_report(json.loads(report.read_text()))


def benchy_command(base_url: str, model: str, tokenizer: Path, corpus_url: str | None,
                   settings: BenchSettings, report: Path) -> list[str]:
    """llama-benchy's arguments: fixed-length generations (``--exact-tg``: vLLM's ``min_tokens``
    and ``ignore_eos``) so runs compare, a JSON report, and stop at the first failed request."""
    command = [sys.executable, "-m", "sparkdeploy.bench_tool",
               "--base-url", f"{base_url.rstrip('/')}/v1", "--model", model, "--tokenizer", str(tokenizer),
               "--pp", *map(str, settings.prompt_tokens), "--tg", *map(str, settings.generation_tokens),
               "--concurrency", *map(str, settings.concurrency), "--runs", str(settings.runs),
               "--exact-tg", "--exit-on-first-fail", "--format", "json", "--save-result", str(report)]
    if corpus_url:
        command += ["--book-url", corpus_url]
    return command


def parse_report(report: Mapping[str, Any]) -> list[Measurement]:
    """llama-benchy's JSON report (``--format json``) as one measurement per test."""
    measurements = []
    for test in report.get("benchmarks") or []:
        if test.get("is_context_prefill_phase"):
            continue
        measurements.append(Measurement(
            prompt_tokens=int(test["prompt_size"]), generation_tokens=int(test["response_size"]),
            concurrency=int(test["concurrency"]), prefill_tps=_mean(test, "pp_throughput"),
            decode_tps=_mean(test, "tg_throughput"), decode_tps_per_request=_mean(test, "tg_req_throughput"),
            ttft_ms=_mean(test, "e2e_ttft")))
    return measurements


def _mean(test: Mapping[str, Any], metric: str) -> float | None:
    value = test.get(metric)
    return round(float(value["mean"]), 3) if isinstance(value, Mapping) and "mean" in value else None


def _run(command: list[str], env: dict[str, str], timeout: int,
         progress: Callable[[str], None]) -> list[str]:
    """Run llama-benchy, passing each output line on; stop it after ``timeout`` seconds."""
    output: list[str] = []
    timed_out = threading.Event()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, stdin=subprocess.DEVNULL)

    def stop() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, stop)
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip():
                output.append(line.rstrip())
                progress(line.rstrip())
        code = process.wait()
    finally:
        timer.cancel()
    tail = "\n".join(output[-_OUTPUT_TAIL_LINES:])
    if timed_out.is_set():
        raise BenchFailed(f"llama-benchy stopped at the time bound (bench_timeout {timeout} s):\n{tail}")
    if code != 0:
        raise BenchFailed(f"llama-benchy failed (exit {code}):\n{tail}")
    return output


@contextlib.contextmanager
def _corpus_url(corpus: Path | None) -> Iterator[str | None]:
    """A loopback URL serving ``corpus`` (llama-benchy fetches its text over HTTP), for the run."""
    if corpus is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="sparkdeploy-corpus-") as folder:
        Path(folder, _CORPUS_NAME).write_bytes(corpus.read_bytes())
        handler = functools.partial(_QuietHandler, directory=folder)
        with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                yield f"http://127.0.0.1:{server.server_port}/{_CORPUS_NAME}"
            finally:
                server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access lines on the operator's terminal."""


def _positive(data: Mapping[str, Any], key: str, source: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(source, key, f"expected a positive integer, got {value!r}")
    return value


def _positive_list(data: Mapping[str, Any], key: str, source: str) -> tuple[int, ...]:
    values = data.get(key)
    if not isinstance(values, (list, tuple)) or not values or not all(
            isinstance(value, int) and not isinstance(value, bool) and value > 0 for value in values):
        raise ConfigError(source, key, f"expected a non-empty list of positive integers, got {values!r}")
    return tuple(values)


def _local_file(data: Mapping[str, Any], key: str, source: str) -> Path | None:
    value = data.get(key)
    if value is None:
        return None
    path = project_path(str(value))
    if not path.is_file():
        raise ConfigError(source, key, f"{path} is not a file", allowed="a local file, or None")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """llama-benchy's own command line, with ``--api-key`` taken from the environment."""
    from llama_benchy.__main__ import main as llama_benchy_main

    key = os.environ.pop(KEY_VARIABLE, "EMPTY")
    sys.argv = [sys.argv[0], *(sys.argv[1:] if argv is None else argv), "--api-key", key]
    llama_benchy_main()


if __name__ == "__main__":
    main()
