"""The queue filtered on "contact needed" stays index-backed on a big table, as every other
filter shape does (test_referral_queue_plan.py, whose 200,000 rolled-back referrals this
reuses): no sort, an index of the referrals_queue* family, and a deep page that starts at the
cursor. One referral in 50 needs a call, as after a mail server's bad day."""
from __future__ import annotations

import json

import pytest

from tests.integration.test_referral_queue_plan import (big_queue, cursor_at, explain,  # noqa: F401 (fixture)
                                                       queue_order_nodes)
from tests.referral_support import plan_nodes

from services.referral import store

pytestmark = pytest.mark.integration

CASES = {
    "contact needed": store.QueueFilter(contact_needed=True),
    "contact needed, urgent": store.QueueFilter(contact_needed=True, priority="urgent"),
    "contact needed, open": store.QueueFilter(contact_needed=True, status="open"),
    "no contact needed": store.QueueFilter(contact_needed=False),
    "no contact needed, waitlisted": store.QueueFilter(contact_needed=False, status="waitlisted"),
}


@pytest.fixture(scope="module")
def flagged_queue(big_queue):  # noqa: F811 (the imported fixture)
    conn, middle = big_queue
    conn.execute("UPDATE referral.referrals SET contact_needed = true"
                 " WHERE patient_mrn LIKE 'PLAN-%' AND (substr(patient_mrn, 6))::int % 50 = 0")
    conn.execute("ANALYZE referral.referrals")
    return conn, middle  # PLAN-100000: urgent, waitlisted and flagged, so in every case but "no contact needed"


def _referral_scans(plan: dict) -> list[dict]:
    return [n for n in plan_nodes(plan) if n.get("Relation Name") == "referrals"]


@pytest.mark.parametrize("deep", [False, True], ids=["first page", "deep page"])
@pytest.mark.parametrize("case", CASES)
def test_the_contact_filter_walks_a_queue_index_in_order(flagged_queue, case, deep):
    conn, middle = flagged_queue
    plan = explain(conn, CASES[case], after=middle if deep else None)
    kinds = [node["Node Type"] for node in queue_order_nodes(plan)]
    scans = _referral_scans(plan)
    print(f"\n{case} ({'deep' if deep else 'first'}): {plan['Execution Time']:.2f} ms, "
          f"{[(n['Node Type'], n.get('Index Name')) for n in scans]}")
    assert "Sort" not in kinds and "Incremental Sort" not in kinds, json.dumps(plan)
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in scans)
    assert all(n["Index Name"].startswith("referrals_queue") for n in scans)


@pytest.mark.parametrize("case", ["contact needed", "contact needed, urgent"])
def test_a_deep_contact_needed_page_starts_at_the_cursor(flagged_queue, case):
    """Pages of one row, so that only the index's blocks can differ: a scan positioned at the
    cursor descends the partial index (3-4 blocks) and fetches one heap row, at any depth; one
    that walked every earlier flagged entry would read the ~10 leaf pages of the 2,000 in front
    of the middle. (Pages of 50 rows compared heap layouts instead: the flagging UPDATE scatters
    the rows' new versions over whatever free space the suite left, 4 vs 19 blocks once.)"""
    conn, middle = flagged_queue
    blocks = [sum(n["Shared Hit Blocks"] + n.get("Shared Read Blocks", 0) for n in _referral_scans(plan))
              for plan in (explain(conn, CASES[case], after=cursor_at(conn, 100), limit=1),
                           explain(conn, CASES[case], after=middle, limit=1))]
    print(f"\n{case}: one-row page near the front {blocks[0]} blocks, at the middle {blocks[1]}")
    assert blocks[1] <= blocks[0] + 3, blocks
