"""The issue's four measures, each beside its ceiling measured in the same run."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import external
from .bodies import report_bytes
from .final_status import FinalStatusWatch
from .http_client import KeepAliveClient
from .load import LoadResult, closed_loop, open_loop
from .sizes import FIRST_OFFERED_LOAD, Sizes
from .stats import LoadPoint, Row, p50_p90_p99, percentile
from .table import triple

BURST_GOAL = 300.0                    # reports/s end to end
LATENCY_GOAL_MS = (50.0, 250.0)       # p50, p99 at half the sustained maximum


@dataclass
class Bench:
    """What every measure needs: the stack, the bare endpoint, the final-status watch."""
    stack: object                     # tests.live_stack.LiveStack
    sizes: Sizes
    kiosk_keys: list[str]
    bare_url: str
    watch: FinalStatusWatch
    say: Callable[[str], None] = print
    brokers: int = 1                  # the stack's Kafka brokers

    def stack_client(self, n: int) -> KeepAliveClient:
        return KeepAliveClient(self.stack.base_url["intake"], self.kiosk_keys[n % len(self.kiosk_keys)])

    def bare_client(self, n: int) -> KeepAliveClient:
        return KeepAliveClient(self.bare_url)

    def settle(self, result: LoadResult, what: str) -> list[str]:
        """Wait until every accepted report of `result` is final; the ones that were not."""
        missing = self.watch.wait_for([s.report_id for s in result.accepted], self.sizes.settle_timeout)
        if missing:
            self.say(f"  {what}: {len(missing)} reports not final after {self.sizes.settle_timeout:.0f} s"
                     f" (in the database: {self.watch.describe(missing)})")
        return missing


def _refused(result: LoadResult) -> str:
    refused = len(result.samples) - len(result.accepted)
    return f", {refused} not accepted" if refused else ""


# -- 1. POST /v1/reports, closed loop --------------------------------------------------------
def post_throughput_component(sizes: Sizes, say: Callable[[str], None]) -> tuple[list[Row], float] | None:
    """Measure 1 by tests/bench/bench_intake_post.py (its own PostgreSQL), when it is there:
    (rows, the bare endpoint's accepted/s); None when not, and post_throughput() measures it."""
    module = external.load(external.INTAKE_POST)
    if module is None:
        return None
    say(f"1. POST /v1/reports: {external.INTAKE_POST}.measure({sizes.post_clients} clients, "
        f"{sizes.post_reports:,} reports; its own PostgreSQL)")
    return external.intake_post(module, sizes.post_clients, sizes.post_reports)


def post_throughput(bench: Bench) -> tuple[list[Row], float]:
    """Measure 1 on the pipeline's own stack and bare endpoint, the fallback should
    tests/bench/bench_intake_post.py not be there (post_throughput_component): rows, and the
    bare endpoint's accepted/s."""
    sizes = bench.sizes
    bench.say(f"1. POST /v1/reports: {sizes.post_reports:,} reports, {sizes.post_clients} keep-alive clients")
    stack = closed_loop(bench.stack_client, report_bytes(sizes.post_reports), sizes.post_clients)
    bench.settle(stack, "measure 1")  # its backlog drained before anything else is timed
    bare = closed_loop(bench.bare_client, report_bytes(sizes.post_reports), sizes.post_clients)
    label = f"{sizes.post_clients} keep-alive clients, {sizes.post_reports:,} reports"
    return [
        Row(f"1. POST /v1/reports accepted/s ({label}{_refused(stack)})", stack.accepted_per_s,
            bare.accepted_per_s, "/s"),
        Row("1. POST /v1/reports p50", percentile([s.latency_s for s in stack.accepted], 0.5) * 1000,
            percentile([s.latency_s for s in bare.accepted], 0.5) * 1000, "ms"),
    ], bare.accepted_per_s


# -- 2. a burst through the whole stack ------------------------------------------------------
@dataclass
class Burst:
    reports: int
    final: int
    rate: float                       # final reports / (last final - first send), reports/s
    brokers: int = 1


def burst(bench: Bench) -> Burst:
    sizes = bench.sizes
    bench.say(f"2. burst: {sizes.burst_reports:,} reports through the whole stack ({_on(bench.brokers)})")
    result = closed_loop(bench.stack_client, report_bytes(sizes.burst_reports), sizes.post_clients)
    bench.settle(result, "measure 2")
    finals = [bench.watch.final_at[s.report_id] for s in result.accepted if s.report_id in bench.watch.final_at]
    first_sent = min(s.sent_wall for s in result.samples)
    rate = len(finals) / (max(finals) - first_sent) if finals else 0.0
    return Burst(len(result.samples), len(finals), rate, bench.brokers)


def _on(brokers: int) -> str:
    return "1 broker" if brokers == 1 else f"{brokers} brokers, RF 3, min ISR 2"


def burst_row(result: Burst, stage_ceilings: dict[str, float], one_broker: Burst | None = None) -> Row:
    """Made after measure 3, whose drain ceilings bound the pipeline too: a chain of stages
    cannot beat its slowest one. `one_broker`: the same run's burst on one broker, which a
    cluster's row is compared with."""
    stage, ceiling = min(stage_ceilings.items(), key=lambda item: item[1], default=("none", math.nan))
    not_final = result.reports - result.final
    versus = f"; 1 broker {one_broker.rate:,.0f}/s, {result.brokers} / 1 = {result.rate / one_broker.rate:.2f}x" \
        if one_broker and one_broker.rate and result.brokers != 1 else ""
    return Row(f"2. burst of {result.reports:,} on {_on(result.brokers)}: reports/s end to end, until every one"
               f" is final{f' ({not_final} not final)' if not_final else ''}; ceiling: the slowest stage's own"
               f" ceiling ({stage}){versus}", result.rate, ceiling, "/s", goal=f">= {BURST_GOAL:.0f}/s",
               goal_met=result.rate >= BURST_GOAL)


# -- 3. each service's drain of a backlog alone ------------------------------------------------
def worker_drain(sizes: Sizes, say: Callable[[str], None]) -> tuple[list[Row], dict[str, float]]:
    """Measure 3 by tests/bench/bench_worker_drain.py (its own PostgreSQL and Kafka): rows, and
    each stage's drain ceiling in reports/s, which bounds measure 2."""
    module = external.load(external.WORKER_DRAIN)
    if module is None:
        return [Row("3. each service's drain of a backlog alone", "not run: tests/bench/bench_worker_drain.py"
                    " is not there", None)], {}
    say(f"3. drain of a backlog: {external.WORKER_DRAIN}.measure(scale={sizes.drain_scale:g}; its own"
        " PostgreSQL and Kafka)")
    return external.worker_drain(module, sizes.drain_scale,
                                 on_row=lambda row: say(f"  {row['service']}: {row['events_per_s']}/s,"
                                                        f" ceiling {row['ceiling_per_s']}/s"))


# -- 4. POST-to-final latency against offered load, open loop ---------------------------------
def offered_loads(sustained: float, sizes: Sizes) -> list[float]:
    """5/s, then the given fractions of the sustained maximum (one of them a half)."""
    loads = {FIRST_OFFERED_LOAD} | {round(f * sustained, 1) for f in sizes.load_fractions
                                    if f * sustained > FIRST_OFFERED_LOAD}
    return sorted(loads)


def cluster_loads(points: list[LoadPoint], sustained: float) -> list[float]:
    """The offered loads measured again on three brokers: 5/s and the one nearest half the
    sustained maximum (the goal's), both taken from the one-broker curve so the rows pair."""
    if not points:
        return [FIRST_OFFERED_LOAD]
    half = min(points, key=lambda p: abs(p.offered - sustained / 2)).offered
    return sorted({points[0].offered, half})


def one_load(bench: Bench, rate: float) -> LoadPoint:
    count = max(10, round(rate * bench.sizes.load_seconds))
    senders = min(64, max(16, math.ceil(rate * 0.5)))  # half a second of reports in flight
    stack = open_loop(bench.stack_client, report_bytes(count), rate, senders)
    missing = bench.settle(stack, f"measure 4 at {rate:g}/s")
    final_s = [bench.watch.final_at[s.report_id] - s.sent_wall for s in stack.accepted
               if s.report_id in bench.watch.final_at]
    bare = open_loop(bench.bare_client, report_bytes(count), rate, senders)
    return LoadPoint(offered=rate, stack_final_ms=p50_p90_p99(final_s),
                     stack_post_ms=p50_p90_p99([s.latency_s for s in stack.accepted]),
                     ceiling_post_ms=p50_p90_p99([s.latency_s for s in bare.accepted]),
                     sent=count, not_final=len(missing) + len(stack.samples) - len(stack.accepted),
                     brokers=bench.brokers)


def latency_curve(bench: Bench, loads: list[float]) -> list[LoadPoint]:
    points = []
    for rate in loads:
        bench.say(f"4. open loop at {rate:g} reports/s for {bench.sizes.load_seconds:g} s (stack, then bare"
                  f" endpoint; {_on(bench.brokers)})")
        points.append(one_load(bench, rate))
        time.sleep(1)  # let the bare endpoint's commits settle before the next load
    return points


def latency_rows(points: list[LoadPoint], sustained: float) -> list[Row]:
    """One row per offered load, a cluster's row right after one broker's at the same load;
    the goal on the load nearest half the (one broker's) sustained maximum."""
    half = sustained / 2
    at_half = min((p.offered for p in points if p.brokers == 1), key=lambda offered: abs(offered - half),
                  default=None)
    rows = []
    for p in sorted(points, key=lambda p: (p.offered, p.brokers)):
        on = f" on {p.brokers} brokers" if p.brokers != 1 else ""
        row = Row(f"4. POST -> final status at {p.offered:g}/s offered{on}: p50 / p90 / p99 (ceiling: bare POST)",
                  triple(p.stack_final_ms), triple(p.ceiling_post_ms), "ms",
                  ratio=p.stack_final_ms[0] / p.ceiling_post_ms[0] if p.ceiling_post_ms[0] else None)
        if p.offered == at_half:
            row.measure += f" [half the sustained max, {half:.1f}/s]"
            row.goal = f"p50 <= {LATENCY_GOAL_MS[0]:.0f} ms, p99 <= {LATENCY_GOAL_MS[1]:.0f} ms"
            row.goal_met = p.stack_final_ms[0] <= LATENCY_GOAL_MS[0] and p.stack_final_ms[2] <= LATENCY_GOAL_MS[1]
        rows.append(row)
    return rows
