"""The pipeline benchmark's pure parts (tests/bench/pipeline): the table, the section of
docs/measurements.md it replaces, the offered loads, the measure-2 ceiling, and the seam to
the component benches. No speed is asserted here (issue 15: only the benchmark measures)."""
from __future__ import annotations

import contextlib
import math
import types

from tests.bench.pipeline import external, markdown_section, measures, table
from tests.bench.pipeline.sizes import FULL, QUICK
from tests.bench.pipeline.stats import LoadPoint, Row, percentile


def test_percentile_is_nearest_rank_and_nan_when_empty():
    assert percentile([3, 1, 2], 0.5) == 2
    assert percentile(list(range(101)), 0.99) == 99
    assert math.isnan(percentile([], 0.5))


def test_a_row_divides_numbers_and_leaves_text_alone():
    assert Row("rate", 100.0, 400.0, "/s").ratio == 0.25
    assert Row("latency", "1 / 2 / 3", "4 / 5 / 6", "ms").ratio is None
    assert Row("no ceiling", 5.0, None).ratio is None


def test_the_text_and_markdown_tables_have_one_line_per_row_and_say_whether_a_goal_is_met():
    rows = [Row("2. burst", 81.0, 318.0, "/s", goal=">= 300/s", goal_met=False),
            Row("4. at 5/s", "12 / 20 / 30", "3 / 4 / 5", "ms", ratio=4.0)]
    text = table.as_text(rows).splitlines()
    assert len(text) == 2 + len(rows)
    assert ">= 300/s: not met" in text[2] and "0.25x" in text[2] and "81.0 /s" in text[2]
    markdown = table.as_markdown(rows).splitlines()
    assert markdown[0].startswith("| measure | stack |") and markdown[1].startswith("| --- |")
    assert "| 4.00x |" in markdown[3]


def test_the_curve_table_lists_every_load():
    point = LoadPoint(5.0, (10.0, 20.0, 30.0), (1.0, 2.0, 3.0), (0.5, 0.6, 0.7), sent=100, not_final=0)
    lines = table.curve_markdown([point, point]).splitlines()
    assert len(lines) == 4 and "| 5/s | 1 | 10.0 / 20.0 / 30.0 |" in lines[2]


def test_the_curve_table_puts_the_clusters_load_after_one_brokers():
    one, three, other = (LoadPoint(rate, (10.0,) * 3, (1.0,) * 3, (0.5,) * 3, sent=100, not_final=0, brokers=brokers)
                         for rate, brokers in ((5.0, 1), (5.0, 3), (25.0, 1)))
    lines = table.curve_markdown([one, other, three]).splitlines()[2:]
    assert [line.split(" | ")[:2] for line in lines] == [["| 5/s", "1"], ["| 5/s", "3"], ["| 25/s", "1"]]


def test_the_section_is_added_once_then_replaced_and_the_rest_of_the_file_kept():
    original = "# Measurements\n\n## Before\ntext\n"
    first = markdown_section.replace_section(original, "figures 1")
    assert first.startswith(original.rstrip()) and markdown_section.HEADING in first and "figures 1" in first
    with_tail = first + "\n## After\nmore\n"
    second = markdown_section.replace_section(with_tail, "figures 2")
    assert "figures 1" not in second and "figures 2" in second
    assert second.count(markdown_section.BEGIN) == 1 and second.count(markdown_section.HEADING) == 1
    assert second.startswith("# Measurements\n\n## Before\ntext\n") and second.endswith("## After\nmore\n")


def test_offered_loads_start_at_5_per_second_and_pass_half_the_sustained_maximum():
    assert measures.offered_loads(100.0, FULL) == [5.0, 25.0, 50.0, 75.0]
    assert measures.offered_loads(4.0, FULL) == [5.0]  # a stack slower than 5/s: the first load only
    assert 0.5 in FULL.load_fractions and max(FULL.load_fractions) > 0.5
    assert max(QUICK.load_fractions) > 0.5


def test_the_goal_row_is_the_load_nearest_half_the_sustained_maximum():
    points = [LoadPoint(rate, (40.0, 90.0, 200.0), (5.0,) * 3, (2.0,) * 3, 10, 0) for rate in (5.0, 25.0, 50.0, 75.0)]
    rows = measures.latency_rows(points, sustained=100.0)
    goals = [r for r in rows if r.goal]
    assert len(goals) == 1 and "50/s offered" in goals[0].measure and goals[0].goal_met is True
    assert rows[0].ratio == 20.0


def test_the_cluster_is_measured_at_5_per_second_and_the_one_broker_load_nearest_half_the_maximum():
    points = [LoadPoint(rate, (40.0,) * 3, (5.0,) * 3, (2.0,) * 3, 10, 0) for rate in (5.0, 25.0, 50.0, 75.0)]
    assert measures.cluster_loads(points, sustained=104.0) == [5.0, 50.0]
    assert measures.cluster_loads(points[:1], sustained=4.0) == [5.0]  # a stack slower than 5/s


def test_a_clusters_latency_row_follows_one_brokers_at_the_same_load_and_shares_its_goal():
    points = [LoadPoint(rate, (40.0, 90.0, 300.0 if brokers == 3 else 200.0), (5.0,) * 3, (2.0,) * 3, 10, 0,
                        brokers=brokers) for rate, brokers in ((5.0, 1), (50.0, 1), (75.0, 1), (5.0, 3), (50.0, 3))]
    rows = measures.latency_rows(points, sustained=100.0)
    assert [("3 brokers" in r.measure, r.measure.split(" offered")[0].rsplit(" ", 1)[1]) for r in rows] == [
        (False, "5/s"), (True, "5/s"), (False, "50/s"), (True, "50/s"), (False, "75/s")]
    assert [(r.goal_met) for r in rows if r.goal] == [True, False]  # the cluster's p99 300 ms > 250


def test_a_clusters_burst_row_names_its_brokers_and_the_one_broker_rate():
    one = measures.Burst(reports=3000, final=3000, rate=300.0)
    row = measures.burst_row(measures.Burst(reports=3000, final=3000, rate=240.0, brokers=3),
                             {"referral drain ceiling": 450.0}, one_broker=one)
    assert "on 3 brokers" in row.measure and "1 broker 300/s, 3 / 1 = 0.80x" in row.measure
    assert row.stack == 240.0 and row.ceiling == 450.0 and row.goal_met is False
    assert "on 1 broker:" in measures.burst_row(one, {"referral drain ceiling": 450.0}).measure


def test_the_burst_ceiling_is_the_slowest_stage():
    row = measures.burst_row(measures.Burst(reports=3000, final=3000, rate=90.0),
                             {"intake POST, bare endpoint": 600.0, "referral drain ceiling": 450.0})
    assert row.ceiling == 450.0 and "referral drain ceiling" in row.measure and row.goal_met is False


def test_the_component_benches_rows_become_table_rows():
    intake_post = types.SimpleNamespace(measure=lambda clients, reports: [
        {"target": "ceiling", "accepted_per_s": 400.0, "p50_ms": 10.0, "p99_ms": 40.0},
        {"target": "intake", "accepted_per_s": 100.0, "p50_ms": 50.0, "p99_ms": 200.0}])
    rows, bare_rate = external.intake_post(intake_post, clients=16, reports=2000)
    assert bare_rate == 400.0 and rows[0].ratio == 0.25 and rows[1].ratio == 5.0

    @contextlib.contextmanager
    def local_infra():
        yield "kafka", "pg"

    drained = [{"service": "intake", "events": 100, "events_per_s": 80, "ceiling_per_s": 160, "ratio": 0.5,
                "published_s": 1.0}]
    worker_drain = types.SimpleNamespace(local_infra=local_infra,
                                         measure=lambda kafka, pg, scale, on_row: drained)
    rows, ceilings = external.worker_drain(worker_drain, scale=0.1)
    assert rows[0].ratio == 0.5
    assert list(ceilings.values()) == [160 / external.EVENTS_PER_REPORT["intake"]]


def test_a_missing_component_bench_is_none_not_an_error():
    assert external.load("tests.bench.no_such_bench") is None
