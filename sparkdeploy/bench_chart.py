"""A PNG of the benchmark, for people who would rather look than read.

Left: decode throughput against concurrency, one line per endpoint (host, model, route) and
prompt/generation size, from each endpoint's newest run. Right: the history of every endpoint's
single-request decode speed (its lowest concurrency), run after run, where a regression shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sparkdeploy.bench_results import BenchRecord


def write_chart(path: Path, histories: Mapping[str, Sequence[BenchRecord]]) -> Path:
    """Draw ``histories`` (endpoint label -> its runs, oldest first) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    figure, (by_concurrency, by_run) = pyplot.subplots(1, 2, figsize=(13, 5), layout="constrained")
    for label, runs in histories.items():
        if not runs:
            continue
        latest = runs[-1]
        sizes = sorted({(m.prompt_tokens, m.generation_tokens) for m in latest.measurements})
        for prompt, generation in sizes:
            points = sorted((m.concurrency, m.decode_tps) for m in latest.measurements
                            if (m.prompt_tokens, m.generation_tokens) == (prompt, generation)
                            and m.decode_tps is not None)
            if points:
                by_concurrency.plot(*zip(*points, strict=True), marker="o",
                                    label=f"{label} pp{prompt} tg{generation}")
        single = [(index, _single_stream(run)) for index, run in enumerate(runs, start=1)]
        single = [(index, value) for index, value in single if value is not None]
        if single:
            by_run.plot(*zip(*single, strict=True), marker="o", label=label)
    by_concurrency.set(title="Decode throughput by concurrency (newest run)", xlabel="concurrent requests",
                       ylabel="tokens/s (all requests)")
    by_run.set(title="Single-request decode speed, run by run", xlabel="run", ylabel="tokens/s")
    for axes in (by_concurrency, by_run):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylim(bottom=0)  # noise must not look like a cliff
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def _single_stream(record: BenchRecord) -> float | None:
    """Decode tokens/s at the run's lowest concurrency (1 unless the data says otherwise)."""
    measured = [m for m in record.measurements if m.decode_tps is not None]
    if not measured:
        return None
    lowest = min(m.concurrency for m in measured)
    return max(m.decode_tps for m in measured if m.concurrency == lowest)
