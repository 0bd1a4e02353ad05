"""The queue query stays index-backed on a big table: no sort, no sequential scan, at any
page depth and for every filter shape. 200,000 referrals are generated in a transaction
that is rolled back, so the shared database is left as it was. Run with -s to see timings."""
from __future__ import annotations

import json
import psycopg
import pytest

from tests.referral_support import next_bubble, plan_nodes

from services.referral import store

pytestmark = pytest.mark.integration

ROWS = 200_000


@pytest.fixture(scope="module")
def big_queue(referral_settings):
    """A connection inside a transaction holding ROWS generated referrals (rolled back at the end)."""
    start = next_bubble()
    with psycopg.connect(referral_settings.database_url) as conn:
        conn.execute(
            "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_display_name, priority, status,"
            " created_at, window_ends_at, version)"
            " SELECT gen_random_uuid(), 'PLAN-' || i, 'Plan Patient', CASE WHEN i %% 5 = 0 THEN 'urgent' ELSE 'routine' END,"
            "  CASE WHEN i %% 4 = 0 THEN 'waitlisted' ELSE 'cancelled' END,"
            "  %(start)s + i * interval '1 minute', %(start)s + i * interval '1 minute' + interval '14 days', 1"
            " FROM generate_series(1, %(rows)s) AS i",
            {"start": start, "rows": ROWS},
        )
        conn.execute(
            "INSERT INTO referral.referral_reports (report_id, referral_id, position, care_level, linked_at)"
            " SELECT gen_random_uuid(), referral_id, 0, 'specialist', created_at FROM referral.referrals"
            " WHERE patient_mrn LIKE 'PLAN-%'"
        )
        # One in fifty flagged as a possible duplicate of the one before: a review list of 4,000,
        # as a big clinic's would be (with none, the planner fairly sorts the few rows it
        # expects, and whether it does depends on what earlier tests left in the table).
        # (the one before found by created_at, the rows joined on their primary key: a join on
        # the MRN text, which has no index of its own, can be planned as 4,000 table scans)
        conn.execute(
            "UPDATE referral.referrals r SET possible_duplicate_of = p.previous_id, possible_duplicate_mrn = p.previous_mrn"
            " FROM (SELECT referral_id, patient_mrn, lag(referral_id) OVER w AS previous_id,"
            "         lag(patient_mrn) OVER w AS previous_mrn"
            "       FROM referral.referrals WHERE patient_mrn LIKE 'PLAN-%' WINDOW w AS (ORDER BY created_at)) p"
            " WHERE r.referral_id = p.referral_id AND substr(p.patient_mrn, 6)::int % 50 = 0")
        conn.execute("ANALYZE referral.referrals")
        conn.execute("ANALYZE referral.referral_reports")
        yield conn, cursor_at(conn, 100_000)
        conn.rollback()


def cursor_at(conn, i: int):
    """The queue cursor of generated row i; for i a multiple of 100 the row is urgent,
    waitlisted and flagged, so it is in the result of every case."""
    return conn.execute("SELECT priority_rank, created_at, referral_id::text FROM referral.referrals"
                        " WHERE patient_mrn = %s", (f"PLAN-{i}",)).fetchone()


def explain(conn, filters: store.QueueFilter, after=None, limit: int = 50) -> dict:
    query, params = store.queue_query(filters, after=after, limit=limit)
    plan = conn.execute(psycopg.sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + query, params).fetchone()[0]
    return plan[0]


def queue_order_nodes(plan: dict):
    """The nodes that produce the queue's rows and their order: not those of a per-row
    subplan (a referral's few report ids, in link order), whose small sort the planner may
    or may not pick from one ANALYZE sample to the next."""
    stack = [plan["Plan"]]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in node.get("Plans", [])
                     if child.get("Parent Relationship") not in ("SubPlan", "InitPlan"))


CASES = {
    "everything": store.QueueFilter(),
    "waitlisted": store.QueueFilter(status="waitlisted"),
    "open": store.QueueFilter(status="open"),
    "urgent": store.QueueFilter(priority="urgent"),
    "waitlisted urgent": store.QueueFilter(status="waitlisted", priority="urgent"),
    "possible duplicates": store.QueueFilter(review="possible_duplicate"),
}


@pytest.mark.parametrize("deep", [False, True], ids=["first page", "deep page"])
@pytest.mark.parametrize("case", CASES)
def test_the_queue_query_walks_an_index_in_order(big_queue, case, deep):
    conn, middle = big_queue
    plan = explain(conn, CASES[case], after=middle if deep else None)
    kinds = [node["Node Type"] for node in queue_order_nodes(plan)]
    on_referrals = [n for n in plan_nodes(plan) if n.get("Relation Name") == "referrals"]
    print(f"\n{case} ({'deep' if deep else 'first'}): {plan['Execution Time']:.2f} ms, "
          f"{[(n['Node Type'], n.get('Index Name')) for n in on_referrals]}")
    assert "Sort" not in kinds and "Incremental Sort" not in kinds, json.dumps(plan)
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in on_referrals), json.dumps(plan)
    assert all(n["Index Name"].startswith("referrals_queue") for n in on_referrals)


def test_a_report_filter_goes_through_the_report_index(big_queue):
    conn, _ = big_queue
    report_id = conn.execute("SELECT report_id::text FROM referral.referral_reports rr"
                             " JOIN referral.referrals r USING (referral_id) WHERE r.patient_mrn = 'PLAN-4242'"
                             ).fetchone()[0]
    plan = explain(conn, store.QueueFilter(report_id=report_id))
    scanned = {(n.get("Relation Name"), n["Node Type"]) for n in plan_nodes(plan) if "Relation Name" in n}
    # (the small slots and providers tables may well be read whole: that is the planner's call)
    assert {kind for relation, kind in scanned if relation in ("referrals", "referral_reports")} <= {
        "Index Scan", "Index Only Scan"}, scanned


def test_pages_cost_the_same_at_any_depth(big_queue):
    """The whole query (joins included) reads no more on a deep page than near the front;
    its time is the queue benchmark's business, not a test's."""
    conn, middle = big_queue
    shallow = explain(conn, store.QueueFilter(status="waitlisted"), after=cursor_at(conn, 100))
    deep = explain(conn, store.QueueFilter(status="waitlisted"), after=middle)
    buffers = [p["Plan"]["Shared Hit Blocks"] + p["Plan"].get("Shared Read Blocks", 0) for p in (shallow, deep)]
    assert buffers[1] <= buffers[0] + 10, buffers


def _queue_scan_blocks(plan: dict) -> int:
    """Buffers read by the index scan on referrals alone (the joins cost the same on any page)."""
    scans = [n for n in plan_nodes(plan) if n.get("Relation Name") == "referrals"]
    return sum(n["Shared Hit Blocks"] + n.get("Shared Read Blocks", 0) for n in scans)


@pytest.mark.parametrize("case", CASES)
def test_a_deep_page_starts_at_the_cursor_in_the_index(big_queue, case):
    """The index scan must start at the cursor, not walk every earlier entry: a row comparison
    that begins on a column an equality already fixes (priority_rank = 0 AND (priority_rank, ...)
    > (...)) is not used to position the scan, which made deep pages of a priority filter
    read the whole urgent part of the index in front of them."""
    conn, middle = big_queue
    # Compared with a page that starts near the front of the same generated rows, so both
    # walk the same shape of index and heap (the queue's real first page holds whatever rows
    # earlier tests left, packed differently); walking every earlier entry would cost
    # thousands of blocks more.
    shallow = _queue_scan_blocks(explain(conn, CASES[case], after=cursor_at(conn, 100)))
    deep = _queue_scan_blocks(explain(conn, CASES[case], after=middle))
    print(f"\n{case}: index blocks shallow page {shallow}, deep page {deep}")
    assert deep <= shallow + 10, (shallow, deep)
