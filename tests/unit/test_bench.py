"""``sparkdeploy bench`` offline: the bench data, llama-benchy's report and command line, records,
the comparison with the previous run and its threshold, and which endpoints a run measures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sparkdeploy.bench_facts import FactMissing, running_image, tokenizer_path
from sparkdeploy.bench_results import BenchRecord, compare, format_table, history, save_record
from sparkdeploy.bench_tool import BenchSettings, Measurement, benchy_command, parse_report
from sparkdeploy.commands.bench import plan_jobs
from sparkdeploy.data import documented_defaults, service_home
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import validate_inventory

MODEL = "openai/gpt-oss-120b"


def measurement(concurrency: int = 1, prefill: float | None = 2000.0, decode: float | None = 60.0,
                ttft: float | None = 900.0) -> Measurement:
    return Measurement(2048, 32, concurrency, prefill, decode, decode and decode / concurrency, ttft)


def record(*measurements: Measurement, date: str = "2026-01-01T10:00:00Z", route: str = "direct",
           **fields) -> BenchRecord:
    values = {"host": "spark", "model": MODEL, "route": route, "date": date, "recipe": "openai-gpt-oss-120b",
              "image": "vllm-node-mxfp4", "image_digest": "sha256:" + "a" * 64,
              "image_id": "sha256:" + "b" * 64,
              "system_fingerprint": "vllm-0.11-tp1-abc", "tool": "llama-benchy 0.4.0",
              "sizes": {"prompt_tokens": [2048], "generation_tokens": [32], "concurrency": [1, 2], "runs": 3},
              "measurements": measurements or (measurement(),), **fields}
    return BenchRecord(**values)


def settings(tmp_path: Path, **overrides) -> BenchSettings:
    data = {**documented_defaults(), "bench_results_dir": str(tmp_path), **overrides}
    return BenchSettings.from_data("spark", data)


# -- comparison and threshold --------------------------------------------------------------------

def test_a_decode_drop_beyond_the_threshold_is_a_regression_and_a_smaller_one_is_not():
    before = record(measurement(1, decode=60.0), measurement(2, decode=100.0))
    after = record(measurement(1, decode=50.0), measurement(2, decode=95.0), date="2026-01-02T10:00:00Z")
    changes = {(c.key[2], c.metric): c for c in compare(before, after, threshold=0.1)}
    single = changes[(1, "decode_tps")]
    assert single.regressed and single.fraction == pytest.approx(-1 / 6)
    assert not changes[(2, "decode_tps")].regressed  # -5 % is within 10 %
    assert not any(c.regressed for c in changes.values() if c.metric != "decode_tps")


def test_a_slower_first_token_is_a_regression_and_a_faster_one_is_not():
    before = record(measurement(1, ttft=900.0), measurement(2, ttft=1000.0))
    after = record(measurement(1, ttft=1100.0), measurement(2, ttft=500.0))
    regressed = {c.key[2]: c.regressed for c in compare(before, after, 0.1) if c.metric == "ttft_ms"}
    assert regressed == {1: True, 2: False}


def test_higher_throughput_is_never_a_regression():
    changes = compare(record(measurement(prefill=2000.0, decode=60.0)),
                      record(measurement(prefill=4000.0, decode=120.0)), 0.1)
    assert changes and not any(change.regressed for change in changes)


def test_only_tests_and_metrics_both_runs_measured_are_compared():
    before = record(measurement(1, prefill=None), measurement(4))
    after = record(measurement(1), measurement(8, decode=1.0))
    changes = compare(before, after, 0.1)
    assert {(c.key[2], c.metric) for c in changes} == {(1, "decode_tps"), (1, "ttft_ms")}


def test_the_table_shows_each_change_and_names_the_regression_and_what_changed():
    before = record(measurement(1, decode=60.0))
    after = record(measurement(1, decode=30.0), date="2026-01-02T10:00:00Z",
                   image_digest="sha256:" + "c" * 64)
    table = format_table(after, compare(before, after, 0.1), before)
    assert "30.0 (-50.0% !)" in table
    assert "REGRESSION: decode_tps at prompt 2048, gen 32, concurrency 1: 60.0 -> 30.0 (-50.0%)" in table
    assert "compared with 2026-01-01T10:00:00Z" in table
    assert "changed since: image_digest: sha256:aaaaaaaaaaaa -> sha256:cccccccccccc" in table


def test_a_first_run_says_there_is_nothing_to_compare_with():
    table = format_table(record(), [], None)
    assert "first run: nothing to compare with" in table and "REGRESSION" not in table


# -- records -----------------------------------------------------------------------------------

def test_records_round_trip_and_history_is_per_route_oldest_first(tmp_path):
    first = record(measurement(decode=60.0), date="2026-01-01T10:00:00Z")
    second = record(measurement(decode=61.0), date="2026-01-02T10:00:00Z")
    proxied = record(measurement(decode=55.0), date="2026-01-03T10:00:00Z", route="proxy spark")
    for run in (second, proxied, first):
        path = save_record(tmp_path, run)
        assert path.stat().st_mode & 0o777 == 0o644
    assert history(tmp_path, "spark", MODEL, "direct") == [first, second]
    assert history(tmp_path, "spark", MODEL, "proxy spark") == [proxied]
    assert history(tmp_path, "other", MODEL, "direct") == []


def test_two_runs_in_the_same_second_are_both_kept(tmp_path):
    save_record(tmp_path, record(measurement(decode=60.0)))
    save_record(tmp_path, record(measurement(decode=50.0)))
    assert [r.measurements[0].decode_tps for r in history(tmp_path, "spark", MODEL, "direct")] == [60.0, 50.0]


def test_a_broken_record_is_named_not_a_traceback(tmp_path):
    path = save_record(tmp_path, record())
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not a benchmark record"):
        history(tmp_path, "spark", MODEL, "direct")


def test_a_record_holds_exactly_what_was_measured_and_on_what():
    stored = json.loads(record().to_json())
    assert set(stored) == {"host", "model", "route", "date", "recipe", "image", "image_digest", "image_id",
                           "system_fingerprint", "tool", "sizes", "measurements", "notes"}
    assert set(stored["measurements"][0]) == {field.name for field in dataclasses.fields(Measurement)}


# -- llama-benchy ---------------------------------------------------------------------------------

def test_llama_benchys_report_becomes_one_measurement_per_test():
    metric = lambda mean: {"mean": mean, "std": 0.0, "values": [mean]}  # noqa: E731
    report = {"version": "0.4.0", "benchmarks": [
        {"concurrency": 2, "context_size": 0, "prompt_size": 2048, "response_size": 32,
         "is_context_prefill_phase": False, "pp_throughput": metric(3900.5), "tg_throughput": metric(110.25),
         "tg_req_throughput": metric(56.0), "e2e_ttft": metric(1040.0), "est_ppt": metric(1000.0)},
        {"concurrency": 1, "context_size": 4096, "prompt_size": 2048, "response_size": 32,
         "is_context_prefill_phase": True, "pp_throughput": metric(1.0)},
        {"concurrency": 1, "context_size": 0, "prompt_size": 2048, "response_size": 32,
         "is_context_prefill_phase": False, "pp_throughput": None, "tg_throughput": metric(60.0)},
    ]}
    assert parse_report(report) == [Measurement(2048, 32, 2, 3900.5, 110.25, 56.0, 1040.0),
                                     Measurement(2048, 32, 1, None, 60.0, None, None)]


def test_the_command_line_carries_the_sizes_but_never_the_key(tmp_path):
    command = benchy_command("http://127.0.0.1:8000/", MODEL, tmp_path / "tokenizer.json", None,
                             settings(tmp_path, bench_concurrency=[1, 4]), tmp_path / "report.json")
    assert command[1:3] == ["-m", "sparkdeploy.bench_tool"]
    assert command[command.index("--base-url") + 1] == "http://127.0.0.1:8000/v1"
    assert command[command.index("--concurrency") + 1:command.index("--runs")] == ["1", "4"]
    assert "--exact-tg" in command and "--api-key" not in command and "--book-url" not in command


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("bench_concurrency", [], "a non-empty list of positive integers"),
    ("bench_prompt_tokens", [2048, 0], "a non-empty list of positive integers"),
    ("bench_runs", 0, "a positive integer"),
    ("bench_regression_threshold", 10, "a fraction between 0 and 1"),
    ("bench_tokenizer", "no/such/tokenizer.json", "is not a file"),
])
def test_bad_bench_data_is_refused_naming_the_key(tmp_path, key, value, problem):
    with pytest.raises(ConfigError) as error:
        settings(tmp_path, **{key: value})
    assert error.value.key == key and problem in str(error.value) and "host 'spark' data" in str(error.value)


def test_the_documented_defaults_are_valid_bench_settings(tmp_path):
    defaults = settings(tmp_path)
    assert defaults.concurrency[0] == 1 and defaults.tokenizer is None and defaults.corpus is None


# -- which endpoints ----------------------------------------------------------------------------

def test_each_served_model_directly_and_through_its_sites_proxy(inventory_data):
    data = inventory_data()
    services = validate_inventory(data)
    direct = plan_jobs(["pegasus.home.arpa", "stella.home.arpa"], data, services, None, through_proxy=False)
    assert [(job.host, job.route) for job in direct] == [("pegasus.home.arpa", "direct"),
                                                         ("stella.home.arpa", "direct")]
    both = plan_jobs(["stella.home.arpa"], data, services, None, through_proxy=True)
    assert [(job.host, job.target.kind, job.route) for job in both] == [
        ("stella.home.arpa", "vllm", "direct"), ("stella.home.arpa", "proxy", "proxy pegasus.home.arpa")]
    assert both[1].target.host_name == "pegasus.home.arpa"


def test_model_selects_the_hosts_serving_it_and_an_unserved_one_is_refused(inventory_data):
    data = inventory_data()
    services = validate_inventory(data)
    hosts = list(data)
    served = services["stella.home.arpa"][0].served_name
    assert [job.host for job in plan_jobs(hosts, data, services, served, False)] == ["stella.home.arpa"]
    with pytest.raises(ConfigError, match="no selected host serves it"):
        plan_jobs(hosts, data, services, "no/such-model", False)


# -- facts read from the host ---------------------------------------------------------------------

def test_the_tokenizer_is_read_from_the_snapshot_the_hosts_default_branch_points_at(inventory_data):
    data = inventory_data()
    service = validate_inventory(data)["pegasus.home.arpa"][0]
    path = tokenizer_path(service, data["pegasus.home.arpa"])
    hub = f"{service_home(data['pegasus.home.arpa'])}/.cache/huggingface/hub"
    repo_dir = f"{hub}/models--openai--gpt-oss-120b"
    assert path == f"{repo_dir}/snapshots/$(cat {repo_dir}/refs/main)/tokenizer.json"


def test_the_running_containers_image_is_inspected_as_root_and_its_digest_kept():
    digest = "sha256:" + "d" * 64
    commands: list[str] = []

    def host(command: str) -> tuple[int, str]:
        commands.append(command)
        if "container inspect" in command:
            return 0, "sha256:" + "e" * 64 + "\n"
        return 0, f"id sha256:{'e' * 64}\nlabel {{\"method\": \"build\"}}\ndigest {digest}\nlegacy \n"

    image = running_image(host, "vllm-gpt-oss")
    assert image.digest == digest and image.image_id == "sha256:" + "e" * 64
    assert all(command.startswith("sudo -n sh -c ") for command in commands)
    assert "e" * 64 in commands[1]


def test_a_missing_container_says_so():
    with pytest.raises(FactMissing, match="no container vllm-gpt-oss"):
        running_image(lambda command: (1, "Error: No such container: vllm-gpt-oss"), "vllm-gpt-oss")
