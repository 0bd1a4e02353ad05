"""`make bench`: python -m tests.bench.pipeline [--quick] [--brokers 1|1,3] [--markdown PATH] [--png PATH] [--no-plot]

Starts its own stack (tests/live_stack.py: `python -m infra.stack` on a temporary state
folder and free ports) and a bare endpoint beside it, runs the four measures of issue 15
with their same-run ceilings, prints one table, writes it into docs/measurements.md
(between markers) and draws docs/bench/latency.png. Then (unless --brokers 1) a second
stack on a three-broker cluster (issue 16) for measure 2 and measure 4 at two of the loads,
printed beside the one-broker rows. --quick: small sizes, written under .state/bench-quick/
unless told where, so a trial never overwrites the documented figures.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.live_stack import REPO

from . import markdown_section, measures, table
from .sizes import FULL, QUICK, Sizes
from .stats import LoadPoint, Row

DOCS_MARKDOWN = REPO / "docs" / "measurements.md"
DOCS_PNG = REPO / "docs" / "bench" / "latency.png"
QUICK_DIR = REPO / ".state" / "bench-quick"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the harness out")
    parser.add_argument("--markdown", type=Path, help=f"file to write the section into (default {DOCS_MARKDOWN})")
    parser.add_argument("--png", type=Path, help=f"the latency picture (default {DOCS_PNG})")
    parser.add_argument("--no-plot", action="store_true", help="no picture (matplotlib not installed)")
    parser.add_argument("--without-components", action="store_true",
                        help="measure 1 on the pipeline's own stack and skip measure 3 (the harness's test)")
    parser.add_argument("--keep-state", action="store_true", help="keep the stack's state folder (logs) afterwards")
    parser.add_argument("--commit", help="the commit the figures are of (default: git rev-parse HEAD here)")
    parser.add_argument("--brokers", default="1,3", choices=("1", "1,3"),
                        help="1: one broker only (quicker); 1,3 (default): then measures 2 and 4 (two loads)"
                             " again on a three-broker cluster, beside the one-broker figures")
    args = parser.parse_args(argv)
    default_dir = QUICK_DIR if args.quick else None
    args.markdown = args.markdown or (default_dir / "measurements.md" if default_dir else DOCS_MARKDOWN)
    args.png = args.png or (default_dir / "latency.png" if default_dir else DOCS_PNG)
    return args


def load_average() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextlib.contextmanager
def bench_on_stack(sizes: Sizes, keep_state: bool, brokers: int, say: Callable[[str], None]) -> Iterator[measures.Bench]:
    """A stack started as `make run` does (with `brokers` Kafka brokers), seeded, with the
    final-status watch and the bare endpoint beside it."""
    from tests.live_stack import running_stack

    from .bare_endpoint import running_bare_endpoint
    from .final_status import FinalStatusWatch
    from .seed import add_provider_with_slots

    with running_stack(prefix=f"clinic-bench-pipeline-{brokers}b-", ready_timeout=300, keep=keep_state,
                       brokers=brokers) as stack:
        say(f"stack ready ({brokers} broker{'s' * (brokers > 1)}): {stack.state_dir}")
        admin_url = stack.settings().admin_database_url
        keys = [stack.kiosk_key(f"bench-kiosk-{n}") for n in range(sizes.post_clients)]
        add_provider_with_slots(stack, sizes.slots)
        with FinalStatusWatch(admin_url) as watch, \
                running_bare_endpoint(admin_url, stack.state_dir / "logs") as bare_url:
            yield measures.Bench(stack=stack, sizes=sizes, kiosk_keys=keys, bare_url=bare_url,
                                 watch=watch, say=say, brokers=brokers)


def run_measures(sizes: Sizes, keep_state: bool, components: bool,
                 cluster: bool) -> tuple[list[Row], list[LoadPoint], float]:
    """Measures 1 and 3 start their own infra (component benches); 2 and 4 share one stack,
    then (cluster) 2 and 4 at two loads again on a three-broker stack. One at a time, so that
    no two compete for the two cores."""
    say = lambda line: print(line, flush=True)  # noqa: E731
    component = measures.post_throughput_component(sizes, say) if components else None
    with bench_on_stack(sizes, keep_state, 1, say) as bench:
        post_rows, bare_rate = component or measures.post_throughput(bench)
        burst = measures.burst(bench)
        points = measures.latency_curve(bench, measures.offered_loads(burst.rate, sizes))
    cluster_burst = None
    if cluster:
        with bench_on_stack(sizes, keep_state, 3, say) as bench:
            cluster_burst = measures.burst(bench)
            points += measures.latency_curve(bench, measures.cluster_loads(points, burst.rate))
    drain_rows, stage_ceilings = measures.worker_drain(sizes, say) if components else \
        ([Row("3. each service's drain of a backlog alone", "skipped (--without-components)", None)], {})
    stage_ceilings["intake POST, bare endpoint"] = bare_rate
    burst_rows = [measures.burst_row(burst, stage_ceilings)]
    if cluster_burst:
        burst_rows.append(measures.burst_row(cluster_burst, stage_ceilings, one_broker=burst))
    rows = [*post_rows, *burst_rows, *drain_rows, *measures.latency_rows(points, burst.rate)]
    return rows, points, burst.rate


def section_body(rows: list[Row], points: list[LoadPoint], png: Path, markdown: Path, *, sizes: Sizes,
                 started: str, commit_id: str, load_before: str, load_after: str, minutes: float) -> str:
    picture = os.path.relpath(png, markdown.parent)
    return f"""\
`make bench` (`python -m tests.bench.pipeline`; `make bench-parts` runs the other component
benches). Measures 1 and 3 are the component benches `tests/bench/bench_intake_post.py` and
`tests/bench/bench_worker_drain.py`, each on a PostgreSQL (and Kafka) of its own, one after
the other; measures 2 and 4 run on a stack the harness starts as `make run` does (temporary
state folder, free ports, no demo data; one provider with {sizes.slots} free slots, so the first
urgent and specialist reports are booked and the rest waitlisted; reports urgent, specialist
and self care 3:3:4, each a new patient) with, beside it on the same PostgreSQL, the **bare
endpoint**: Flask + gunicorn (2 processes x 4 threads) + psycopg_pool doing intake's durable
work only (JSON body, INSERT the report, INSERT an outbox row, commit). Every ceiling is
measured in the same run; ratio = stack / ceiling (p50 for latencies).

- **Final status** is seen without polling: a trigger on the bench stack's `intake.reports`
  NOTIFYs when a report's status view first becomes final (referral linked, or a self-care
  decision), and one listening connection stamps the time; NOTIFY arrives at commit.
- **2**: 16 keep-alive clients post the burst as fast as they can; the rate is reports final /
  (last final - first post). Its ceiling is the slowest stage's own ceiling in this run (the
  bare endpoint for intake's API; each worker's drain ceiling from measure 3, in reports/s:
  intake's worker gets 1.6 events per report, a decision and, for the 60% referred, a referral
  event): a chain of stages cannot beat its slowest one.
- **4**: open loop (report i due at start + i/rate, latency counted from its due time, so
  queueing shows); offered loads 5/s and {", ".join(f"{f:g}" for f in sizes.load_fractions)} of
  the sustained maximum (measure 2's rate), {sizes.load_seconds:g} s each, every report final
  before the next load; the ceiling is the bare endpoint's POST latency on the same schedule.
  The burst's rate is a peak (stages overlapping on a full backlog): a load the stack cannot
  keep up with for {sizes.load_seconds:g} s shows as latencies that grow with the run's length.
- **1 vs 3 brokers** (issue 16): the stack above runs one Kafka broker (the default of `make
  run`); then a second, fresh stack on a three-broker cluster (`CLINIC_KAFKA_BROKERS=3`: RF 3,
  `min.insync.replicas=2`, `acks=all`, docs/kafka-cluster.md) with its own bare endpoint runs
  measure 2 and measure 4 at 5/s and at the one-broker load nearest half the sustained
  maximum, each row right after the one-broker row it compares with (`--brokers 1` skips it).

Run {started}, {minutes:.1f} min; commit {commit_id};
sizes: {sizes.label}.
Load average (2 cores, shared with other engineers' suites and CI): **{load_before}** at the
start, **{load_after}** at the end, so the figures are on the slow side.

{table.as_markdown(rows)}

Every offered load of measure 4 (what the picture draws):

{table.curve_markdown(points)}

![p50 and p99 against offered load: stack POST -> final status, stack POST, bare endpoint POST]({picture})
"""


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = QUICK if args.quick else FULL
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = load_average()
    print(f"pipeline benchmark ({'quick' if args.quick else 'full'} sizes: {sizes.label})", flush=True)
    print(f"load average at start: {load_before}", flush=True)
    began = time.monotonic()
    rows, points, sustained = run_measures(sizes, args.keep_state, not args.without_components,
                                           cluster=args.brokers == "1,3")
    load_after = load_average()
    minutes = (time.monotonic() - began) / 60
    print()
    print(table.as_text(rows))
    print(f"\nload average at start: {load_before}; at end: {load_after}; {minutes:.1f} min")
    if not args.no_plot:
        from .plot import draw

        draw(points, args.png, f"POST -> final status vs offered load ({started}; sustained max "
                               f"{sustained:.0f}/s; load avg {load_after.split(' ')[0]})", sustained / 2)
        print(f"picture: {args.png}")
    body = section_body(rows, points, args.png, args.markdown, sizes=sizes, started=started,
                        commit_id=args.commit or commit(), load_before=load_before, load_after=load_after,
                        minutes=minutes)
    markdown_section.write_section(args.markdown, body)
    print(f"table written to {args.markdown} (section '{markdown_section.HEADING}')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
