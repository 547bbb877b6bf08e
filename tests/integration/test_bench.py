"""``sparkdeploy bench`` as an operator runs it, with the real llama-benchy, against the stand-in
vLLM on loopback (its numbers mean nothing; the plumbing is real): a first run, a second run
compared with it, a forced regression flagged by the exit status, the chart, and no key leaked.

The stand-in requires an API key, as a Spark with ``vllm_api_key_enabled`` does. No SSH host
exists here, so the image is not read (the record says so); the sandbox test covers that path.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from loopback_servers import REPO, STANDIN_SCRIPT, free_port, stop, wait_until_up
from PIL import Image

from sparkdeploy.bench_results import history

SPARKDEPLOY = str(Path(sys.executable).with_name("sparkdeploy"))
MODEL = "openai/gpt-oss-120b"
HOST = "bench-standin"
EXIT_REGRESSION = 2


def word_level_tokenizer() -> dict:
    """A tiny real tokenizer in the ``tokenizer.json`` format (the sandbox's stand-in model has one)."""
    vocab = {"<unk>": 0, **{chr(97 + i): 1 + i for i in range(26)}}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}}


@pytest.fixture(scope="module")
def api_key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def standin(tmp_path_factory, api_key):
    port, log = free_port(), tmp_path_factory.mktemp("bench-standin") / "server.log"
    command = [sys.executable, str(STANDIN_SCRIPT), "--host", "127.0.0.1", "--port", str(port),
               "--served-model-name", MODEL, "--request-log", "/dev/null", "--api-key", api_key]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, 20, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, standin, api_key) -> Path:
    """An inventory of one Spark whose vLLM is the stand-in, with small bench sizes."""
    folder = tmp_path_factory.mktemp("bench")
    (folder / "tokenizer.json").write_text(json.dumps(word_level_tokenizer()))
    host_data = {
        "recipe": "openai-gpt-oss-120b", "verify_vllm_url": standin,
        "vllm_api_key_enabled": True, "vllm_api_key": api_key,
        # nothing listens there: the image facts are not read, and the run goes on
        "ssh_hostname": "127.0.0.1", "ssh_port": free_port(),
        "secrets_dir": str(folder / "secrets"), "bench_results_dir": str(folder / "results"),
        "bench_tokenizer": str(folder / "tokenizer.json"), "bench_corpus": str(REPO / "README.md"),
        "bench_prompt_tokens": [128], "bench_generation_tokens": [16], "bench_concurrency": [1, 2],
        "bench_runs": 1, "bench_timeout": 60,
    }
    (folder / "inventory.py").write_text(f"standins = [({HOST!r}, {host_data!r})]\n")
    return folder


def bench(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SPARKDEPLOY, "bench", "--inventory", str(workdir / "inventory.py")], cwd=REPO,
                          capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture(scope="module")
def runs(workdir):
    """Three runs: a first, a second, and a third after the stored second was made 100 times faster."""
    first = bench(workdir)
    second = bench(workdir)
    stored = max((workdir / "results").rglob("direct-*.json"), key=lambda path: path.stat().st_mtime_ns)
    inflated = json.loads(stored.read_text())
    for row in inflated["measurements"]:
        row["decode_tps"] *= 100
    stored.write_text(json.dumps(inflated))
    third = bench(workdir)
    return first, second, third


def test_a_first_run_measures_each_concurrency_and_keeps_a_record(runs, workdir):
    first = runs[0]
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{HOST} {MODEL} (direct)" in first.stdout and "first run: nothing to compare with" in first.stdout
    assert "Running test: pp=128, tg=16, depth=0, concurrency=2" in first.stderr  # progress, on stderr
    record = history(workdir / "results", HOST, MODEL, "direct")[0]
    assert [(m.prompt_tokens, m.generation_tokens, m.concurrency) for m in record.measurements] == [
        (128, 16, 1), (128, 16, 2)]
    assert all(m.decode_tps and m.decode_tps > 0 and m.ttft_ms and m.ttft_ms > 0 for m in record.measurements)
    assert record.system_fingerprint == "fp_standin_vllm" and record.recipe == "openai-gpt-oss-120b"
    assert record.tool.startswith("llama-benchy ") and record.sizes["concurrency"] == [1, 2]
    assert record.image_digest is None and any("image not read" in note for note in record.notes)


def test_a_second_run_is_compared_with_the_first(runs, workdir):
    second = runs[1]
    first_date = history(workdir / "results", HOST, MODEL, "direct")[0].date
    assert f"compared with {first_date}" in second.stdout, second.stdout + second.stderr
    assert "%)" in second.stdout  # each number with its change
    # the stand-in's speed on a shared machine: a slowdown may be flagged, but then it says so
    assert second.returncode == (EXIT_REGRESSION if "REGRESSION" in second.stdout else 0), second.stderr


def test_a_regression_is_flagged_and_the_exit_status_says_so(runs):
    third = runs[2]
    assert third.returncode == EXIT_REGRESSION, third.stdout + third.stderr
    assert "REGRESSION: decode_tps at prompt 128, gen 16, concurrency 1" in third.stdout
    assert "REGRESSION: decode_tps at prompt 128, gen 16, concurrency 2" in third.stdout


def test_the_chart_is_a_readable_png(runs, workdir):
    chart = workdir / "results" / "bench.png"
    assert f"chart: {chart}" in runs[2].stdout
    with Image.open(chart) as image:
        image.verify()
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.size == (1300, 500)
        assert len(image.convert("L").getcolors(maxcolors=100000) or []) > 10  # drawn, not blank


def test_no_key_reaches_the_records_or_the_output(runs, workdir, api_key):
    stored = "".join(path.read_text() for path in (workdir / "results").rglob("*.json"))
    assert stored and api_key not in stored
    assert all(api_key not in run.stdout + run.stderr for run in runs)
