"""``sparkdeploy bench`` against the converged sandbox: llama-benchy through the SSH tunnel to the
stand-in vLLM and through the real proxy, the image and the tokenizer read from the host, records
compared run to run, a forced regression flagged by the exit status, the chart.

The stand-in's numbers mean nothing; the plumbing is real. Sizes come from group_data/sandbox.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from sparkdeploy.bench_results import history
from sparkdeploy.sandbox.state import HOST_NAME
from sparkdeploy.secrets import PROXY_SECRETS, host_secrets

EXIT_REGRESSION = 2
DIRECT, PROXIED = "direct", f"proxy {HOST_NAME}"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-results")


@pytest.fixture(scope="module")
def bench(converged, sparkdeploy, results):
    def run():
        return sparkdeploy("bench", "--limit", HOST_NAME, "--through-proxy",
                           "--data", f"bench_results_dir={results}")
    return run


@pytest.fixture(scope="module")
def runs(bench, results):
    """A first run, a second, and a third after the stored second was made 100 times faster;
    and the served model's name."""
    first, second = bench(), bench()
    stored = max((results / HOST_NAME).rglob("direct-*.json"), key=lambda path: path.stat().st_mtime_ns)
    inflated = json.loads(stored.read_text())
    for row in inflated["measurements"]:
        row["decode_tps"] *= 100
    stored.write_text(json.dumps(inflated))
    return first, second, bench(), inflated["model"]


def test_both_routes_are_measured_with_what_the_host_serves(runs, results):
    first, _, _, model = runs
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"({DIRECT})" in first.stdout and f"({PROXIED})" in first.stdout
    assert "Running test: pp=128, tg=16, depth=0, concurrency=2" in first.stderr
    direct = history(results, HOST_NAME, model, DIRECT)[0]
    assert direct.image_id and direct.image_id.startswith("sha256:"), direct.notes
    assert not direct.notes, direct.notes  # the image read over SSH, the fingerprint over HTTP
    assert direct.system_fingerprint == "fp_standin_vllm"
    assert all(m.decode_tps and m.decode_tps > 0 for m in direct.measurements)
    assert history(results, HOST_NAME, model, PROXIED)[0].measurements


def test_a_second_run_is_compared_with_the_first(runs, results):
    second, model = runs[1], runs[3]
    first_date = history(results, HOST_NAME, model, DIRECT)[0].date
    assert f"compared with {first_date}" in second.stdout, second.stdout + second.stderr
    assert second.returncode == (EXIT_REGRESSION if "REGRESSION" in second.stdout else 0), second.stderr


def test_a_regression_is_flagged_and_the_exit_status_says_so(runs):
    third = runs[2]
    assert third.returncode == EXIT_REGRESSION, third.stdout + third.stderr
    assert "REGRESSION: decode_tps at prompt 128, gen 16, concurrency 1" in third.stdout


def test_the_chart_is_a_readable_png(runs, results):
    with Image.open(results / "bench.png") as image:
        assert image.format == "PNG" and image.size == (1300, 500)


def test_no_secret_reaches_the_records_or_the_output(runs, results, sandbox_data):
    key = host_secrets(HOST_NAME, sandbox_data, PROXY_SECRETS)["proxy_master_key"]
    stored = "".join(path.read_text() for path in results.rglob("*.json"))
    assert stored and key not in stored
    assert all(key not in run.stdout + run.stderr for run in runs[:3])
