"""The seam to the component benches other engineers own: tests/bench/bench_intake_post.py
(measure 1) and tests/bench/bench_worker_drain.py (measure 3). Each starts its own
PostgreSQL (and Kafka) and returns `measure(...) -> list[dict]` in the form its docstring
gives; this module calls them when they are there and turns their dicts into table rows.
Should a file be missing, load() says so and the caller falls back (measure 1) or reports
the measure as not run (measure 3)."""
from __future__ import annotations

import importlib
from types import ModuleType

from .stats import Row

INTAKE_POST = "tests.bench.bench_intake_post"
WORKER_DRAIN = "tests.bench.bench_worker_drain"

# Events a report brings each worker, in the pipeline's mix (3:3:4 urgent, specialist, self
# care): every report one decision; intake also gets a referral event for the 60% referred.
EVENTS_PER_REPORT = {"triage": 1.0, "referral": 1.0, "intake": 1.6}


def load(module_name: str) -> ModuleType | None:
    """The module, or None when its file is not there (an import error inside it is raised)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def intake_post(module: ModuleType, clients: int, reports: int) -> tuple[list[Row], float]:
    """Measure 1's rows, and the bare endpoint's accepted/s (the intake stage's ceiling).
    Their dicts: {"target": "ceiling" | "intake", "accepted_per_s", "p50_ms", "p99_ms", ...}."""
    by_target = {row["target"]: row for row in module.measure(clients=clients, reports=reports)}
    intake, bare = by_target["intake"], by_target["ceiling"]
    label = f"{clients} keep-alive clients, {reports:,} reports; {INTAKE_POST}"
    return [Row(f"1. POST /v1/reports accepted/s ({label})", intake["accepted_per_s"], bare["accepted_per_s"], "/s"),
            Row("1. POST /v1/reports p50 / p99", f"{intake['p50_ms']:.1f} / {intake['p99_ms']:.1f}",
                f"{bare['p50_ms']:.1f} / {bare['p99_ms']:.1f}", "ms",
                ratio=intake["p50_ms"] / bare["p50_ms"] if bare["p50_ms"] else None)], bare["accepted_per_s"]


def worker_drain(module: ModuleType, scale: float, on_row=None) -> tuple[list[Row], dict[str, float]]:
    """Measure 3's rows (on its own PostgreSQL and Kafka), and each stage's ceiling in reports/s.
    Their dicts: {"service", "events", "events_per_s", "ceiling_per_s", "ratio", "published_s"}."""
    with module.local_infra() as (kafka, pg):
        measured = module.measure(kafka, pg, scale=scale, on_row=on_row)
    rows, ceilings = [], {}
    for item in measured:
        service = item["service"]
        rows.append(Row(f"3. {service} worker drains {item['events']:,} events alone (events/s;"
                        f" all published after {item['published_s']:g} s)",
                        float(item["events_per_s"]), float(item["ceiling_per_s"]), "/s"))
        ceilings[f"{service} drain ceiling, {EVENTS_PER_REPORT[service]:g} events per report"] = \
            item["ceiling_per_s"] / EVENTS_PER_REPORT[service]
    return rows, ceilings
