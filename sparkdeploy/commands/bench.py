"""``sparkdeploy bench``: measure each served model with llama-benchy and flag a slowdown.

Per served model of the selected hosts: llama-benchy against vLLM directly (through the SSH
tunnel ``verify`` uses, when the host's data asks for one) and, with ``--through-proxy``, through
its site's proxy. Each run is kept as a record (``bench_results_dir``), printed as a table with
the change against the previous run of the same host, model and route, and drawn into a PNG.
Exit 0 when nothing regressed, 2 when a number fell beyond ``bench_regression_threshold``
(for cron, like ``drift``), 1 when an endpoint could not be measured.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import paramiko

from sparkdeploy.bench_chart import write_chart
from sparkdeploy.bench_facts import FactMissing, fetch_tokenizer, running_image, system_fingerprint
from sparkdeploy.bench_results import BenchRecord, compare, format_table, history, save_record
from sparkdeploy.bench_tool import BenchFailed, BenchSettings, run_llama_benchy, tool_version
from sparkdeploy.commands.endpoints import (
    endpoint_client,
    endpoint_key,
    endpoint_url,
    open_tunnel,
    select_hosts,
)
from sparkdeploy.commands.options import add_inventory_options, add_limit_option, load_hosts
from sparkdeploy.commands.sandbox import progress_printer
from sparkdeploy.drift import EXIT_CLEAN, EXIT_ERROR, redact
from sparkdeploy.drift import EXIT_DRIFT as EXIT_REGRESSION
from sparkdeploy.errors import ConfigError
from sparkdeploy.plan import validate_inventory
from sparkdeploy.tunnel import SshTunnel
from sparkdeploy.verify import Target, plan_targets
from sparkdeploy.vllm_service import VllmService

CHART_NAME = "bench.png"


@dataclass(frozen=True)
class Job:
    """One endpoint to measure: ``target`` is where requests go; ``host`` serves the model."""

    target: Target
    host: str
    model: str
    route: str


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure each served model with llama-benchy (exit 2 on a regression)",
        description="Run llama-benchy against each served model (prefill and decode tokens/s, "
        "time to first token, per concurrency level; sizes from the bench_* data), keep the "
        "results per host and model, compare with the previous run and draw a chart. Exit 0: "
        "no regression, 2: a number fell beyond bench_regression_threshold, 1: an error.")
    add_limit_option(parser)
    parser.add_argument("--model", metavar="NAME", help="only the hosts serving this model (served name)")
    parser.add_argument("--through-proxy", action="store_true",
                        help="also measure each model through its site's LiteLLM proxy")
    parser.add_argument("--chart", type=Path, metavar="PNG",
                        help=f"where to draw the chart (default: bench_results_dir/{CHART_NAME})")
    add_inventory_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    inventory, data = load_hosts(args)
    services = validate_inventory(data)
    jobs = plan_jobs(select_hosts(inventory, list(data), args.limit), data, services, args.model,
                     args.through_proxy)
    settings = {job.host: BenchSettings.from_data(job.host, data[job.host]) for job in jobs}
    if not jobs:
        print("sparkdeploy bench: no vLLM serves HTTP on the selected hosts", file=sys.stderr)
        return EXIT_ERROR
    code = EXIT_CLEAN
    histories: dict[str, list[BenchRecord]] = {}
    tunnels: dict[str, SshTunnel] = {}
    try:
        for job in jobs:
            job_settings = settings[job.host]
            progress = _job_progress(job)
            try:
                service = next(service for service in services[job.host] if service.served_name == job.model)
                record = measure(job, data, service, job_settings, tunnels, progress)
            except (BenchFailed, FactMissing, OSError, paramiko.SSHException) as exc:
                print(redact(f"{job.host} {job.model} ({job.route}): not measured: {exc}"), flush=True)
                code = EXIT_ERROR
                continue
            runs = history(job_settings.results_dir, job.host, job.model, job.route)
            previous = runs[-1] if runs else None
            save_record(job_settings.results_dir, record)
            changes = compare(previous, record, job_settings.regression_threshold) if previous else []
            print(format_table(record, changes, previous) + "\n", flush=True)
            if any(change.regressed for change in changes) and code == EXIT_CLEAN:
                code = EXIT_REGRESSION
            histories[record.label] = [*runs, record]
    finally:
        for tunnel in tunnels.values():
            tunnel.close()
    if histories:
        chart = args.chart or settings[jobs[0].host].results_dir / CHART_NAME
        print(f"chart: {write_chart(chart, histories)}")
    return code


def plan_jobs(selected: list[str], data: Mapping[str, Mapping[str, Any]],
              services: Mapping[str, tuple[VllmService, ...]], model: str | None,
              through_proxy: bool) -> list[Job]:
    """Every selected host's served model, directly and (``through_proxy``) via its site's proxy."""
    direct = [target for target in plan_targets(selected, data, services) if target.kind == "vllm"]
    if model is not None:
        served = sorted({target.models[0] for target in direct})
        direct = [target for target in direct if target.models[0] == model]
        if not direct:
            raise ConfigError("--model", model, "no selected host serves it",
                              allowed=", ".join(served) or "no model served")
    proxies = [target for target in plan_targets(list(data), data, services)
               if target.kind == "proxy"] if through_proxy else []
    jobs = []
    for target in direct:
        name, site = target.models[0], data[target.host_name].get("proxy_site")
        jobs.append(Job(target, target.host_name, name, "direct"))
        jobs += [Job(proxy, target.host_name, name, f"proxy {proxy.host_name}") for proxy in proxies
                 if data[proxy.host_name].get("proxy_site") == site and name in proxy.models]
    return jobs


def measure(job: Job, data: Mapping[str, Mapping[str, Any]], service: VllmService, settings: BenchSettings,
            tunnels: dict[str, SshTunnel], progress: Callable[[str], None]) -> BenchRecord:
    """Read what is being measured, run llama-benchy, and make the record."""
    host_data, target_data = data[job.host], data[job.target.host_name]
    url = endpoint_url(job.target, target_data, tunnels)
    notes: list[str] = []
    image_digest = image_id = fingerprint = None
    try:
        container = service.container_name
        image = running_image(open_tunnel(job.host, host_data, tunnels).run, container)
        image_digest, image_id = image.digest, image.image_id
    except (FactMissing, OSError, paramiko.SSHException) as exc:
        notes.append(f"image not read from the host: {exc}")
    try:
        with endpoint_client(job.target, target_data, tunnels, url) as client:
            fingerprint = system_fingerprint(client, job.model)
    except (FactMissing, httpx.HTTPError, ValueError) as exc:
        notes.append(f"system_fingerprint not read: {exc}")
    with tempfile.TemporaryDirectory(prefix="sparkdeploy-tokenizer-") as folder:
        tokenizer = settings.tokenizer or _host_tokenizer(job, host_data, service, tunnels, Path(folder))
        progress(f"llama-benchy at {url} (prompt {list(settings.prompt_tokens)}, generation "
                 f"{list(settings.generation_tokens)}, concurrency {list(settings.concurrency)})")
        measurements = run_llama_benchy(url, job.model, endpoint_key(job.target, target_data), tokenizer,
                                        settings, progress)
    return BenchRecord(
        host=job.host, model=job.model, route=job.route,
        date=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), recipe=str(host_data.get("recipe")),
        image=service.image.image, image_digest=image_digest, image_id=image_id,
        system_fingerprint=fingerprint, tool=tool_version(), sizes=settings.sizes(),
        measurements=tuple(measurements), notes=tuple(notes))


def _host_tokenizer(job: Job, data: Mapping[str, Any], service: VllmService, tunnels: dict[str, SshTunnel],
                    folder: Path) -> Path:
    try:
        return fetch_tokenizer(open_tunnel(job.host, data, tunnels).run, service, data,
                               folder / "tokenizer.json")
    except (FactMissing, OSError, paramiko.SSHException) as exc:
        raise FactMissing(f"{exc} (set bench_tokenizer to a local tokenizer.json)") from exc


def _job_progress(job: Job) -> Callable[[str], None]:
    """Progress lines on stderr, stamped and naming the endpoint (stdout keeps the tables)."""
    report = progress_printer(sys.stderr)
    return lambda line: report(redact(f"{job.host} {job.model} ({job.route}): {line}"))
