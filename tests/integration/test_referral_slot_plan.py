"""A claim for the earliest free slot is one index seek however many slots are held (issue
15): the plan reads the partial index of free slots and stops at its first entry, walking
none of the held slots in front of it. Same for the free-slot count and the free filter of
the slot list.

20,000 slots of one provider, the earliest 19,000 held by (completed) referrals, are
committed and vacuumed, as a busy clinic's table would be (generated and read in one
transaction, the partial index would still list the held slots' old entries), in a time
span of their own; the module's teardown deletes them."""
from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from services.referral import slot_store, store
from tests.referral_support import BUBBLE_SPACING, next_bubble, plan_nodes

pytestmark = pytest.mark.integration

SLOTS = 20_000
HELD = 19_000
SLOT_LENGTH = timedelta(minutes=3)
MRN_PREFIX = "SLOTPLAN-"
FREE_INDEXES = ("slots_free_by_provider", "slots_free_by_start")


@pytest.fixture(scope="module")
def many_held(referral_settings):
    """(connection, provider id, start of the span); the rows are gone after the module."""
    start = next_bubble()
    while next_bubble() < start + SLOTS * SLOT_LENGTH + BUBBLE_SPACING:
        pass  # the span is longer than one test's bubble: keep the next ones clear of it
    with psycopg.connect(referral_settings.database_url, autocommit=True) as conn:
        with conn.transaction():
            provider_id = conn.execute(
                "INSERT INTO referral.providers (name, specialty, location) VALUES"
                " ('Plan clinic ' || gen_random_uuid(), 'pain_management', 'Room 1') RETURNING provider_id::text"
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO referral.slots (provider_id, start_at, end_at)"
                " SELECT %(provider)s, %(start)s + i * %(length)s, %(start)s + (i + 1) * %(length)s"
                " FROM generate_series(1, %(slots)s) AS i",
                {"provider": provider_id, "start": start, "length": SLOT_LENGTH, "slots": SLOTS})
            # The earliest HELD slots are held (completed referrals keep theirs), as in a busy clinic.
            conn.execute(
                "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_display_name, priority, status,"
                " slot_id, created_at, window_ends_at, version)"
                " SELECT gen_random_uuid(), %(prefix)s || slot_id, 'Plan Patient', 'routine', 'completed', slot_id,"
                "  %(start)s, %(start)s + interval '14 days', 1"
                " FROM (SELECT slot_id FROM referral.slots WHERE provider_id = %(provider)s"
                "       ORDER BY start_at LIMIT %(held)s) held",
                {"provider": provider_id, "start": start, "held": HELD, "prefix": MRN_PREFIX})
        try:
            conn.execute("VACUUM ANALYZE referral.slots")
            conn.execute("VACUUM ANALYZE referral.referrals")
            yield conn, provider_id, start
        finally:
            with conn.transaction():
                conn.execute("DELETE FROM referral.referrals WHERE patient_mrn LIKE %s", (MRN_PREFIX + "%",))
                conn.execute("DELETE FROM referral.slots WHERE provider_id = %s", (provider_id,))
                conn.execute("DELETE FROM referral.providers WHERE provider_id = %s", (provider_id,))
            conn.execute("VACUUM ANALYZE referral.slots")


def explain(conn, query, params) -> dict:
    prefix = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
    statement = psycopg.sql.SQL(prefix) + query if isinstance(query, psycopg.sql.Composable) else prefix + query
    return conn.execute(statement, params).fetchone()[0][0]


def slot_scans(plan: dict) -> list[dict]:
    return [n for n in plan_nodes(plan) if n.get("Relation Name") == "slots"]


def test_the_generated_table_is_what_the_test_says(many_held):
    conn, provider_id, _start = many_held
    held, free = conn.execute("SELECT count(*) FILTER (WHERE booked), count(*) FILTER (WHERE NOT booked)"
                              " FROM referral.slots WHERE provider_id = %s", (provider_id,)).fetchone()
    assert (held, free) == (HELD, SLOTS - HELD)


def test_a_claim_seeks_the_first_free_slot_without_walking_the_held_ones(many_held):
    conn, provider_id, start = many_held
    plan = explain(conn, store.CLAIM_FREE_SLOT, (start, start + timedelta(days=1000)))

    scans = slot_scans(plan)
    assert [n["Node Type"] for n in scans] == ["Index Scan"], plan
    assert scans[0]["Index Name"] == "slots_free_by_start"
    assert scans[0]["Actual Rows"] == 1 and scans[0].get("Rows Removed by Filter", 0) == 0
    # A walk of the held slots' entries would read some hundred pages.
    assert pages(scans[0]) <= 10, scans[0]
    assert not [n for n in plan_nodes(plan) if n["Node Type"] == "Sort"]
    # And it is the right slot: the first one not held.
    with conn.transaction():
        claimed = store.claim_free_slot(conn, start, start + timedelta(days=1000))
        assert claimed.start == start + (HELD + 1) * SLOT_LENGTH
        assert claimed.provider_id == provider_id
        raise psycopg.Rollback()  # leaves the slot free


def test_a_new_patients_claim_with_the_first_reads_is_the_same_seek(many_held):
    conn, provider_id, start = many_held
    params = {"report": "00000000-0000-0000-0000-000000000000", "key": "nobody", "from": start,
              "referral": "00000000-0000-0000-0000-000000000000",
              "until": start + timedelta(days=1000)}
    plan = explain(conn, store._CLAIM_FOR_NEW_PATIENT, params)

    scans = slot_scans(plan)
    assert [n["Node Type"] for n in scans] == ["Index Scan"], plan
    assert scans[0]["Index Name"] == "slots_free_by_start"
    assert scans[0]["Actual Rows"] == 1 and pages(scans[0]) <= 10
    assert not [n for n in plan_nodes(plan) if n["Node Type"] == "Sort"]


def pages(node: dict) -> int:
    return node["Shared Hit Blocks"] + node["Shared Read Blocks"]


def test_counting_a_providers_free_slots_reads_only_free_ones(many_held):
    """A count reads every free slot after `start` (here a twentieth of the table): whether a
    sequential scan is cheaper than the index is the planner's fair call on the statistics of
    the day (in the full suite, with other tests' slots, it once chose one). What must hold is
    that an index of free slots answers it without reading a held slot: checked with
    sequential scans off for this one statement."""
    conn, provider_id, start = many_held
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = explain(conn, slot_store.COUNT_FREE, (provider_id, start))

    scans = slot_scans(plan)
    assert len(scans) == 1 and scans[0]["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), plan
    # A bitmap scan (the planner's call too, with other tests' slots in the table) names its
    # index in the Bitmap Index Scan under it.
    index_scan = scans[0]["Plans"][0] if scans[0]["Node Type"] == "Bitmap Heap Scan" else scans[0]
    # Either index of free slots (after `start`, only this provider has slots: a tie).
    assert index_scan["Index Name"] in FREE_INDEXES and scans[0].get("Rows Removed by Filter", 0) == 0, plan
    assert slot_store.count_free(conn, provider_id, since=start) == SLOTS - HELD


@pytest.mark.parametrize("by_provider", [False, True], ids=["all providers", "one provider"])
def test_the_free_slot_list_reads_the_free_slot_index_in_order(many_held, by_provider):
    conn, provider_id, start = many_held
    query, params = slot_store.slots_query(provider_id=provider_id if by_provider else None, free=True,
                                           start_from=start, start_to=None, after=None, limit=50)
    plan = explain(conn, query, params)

    scans = [n for n in slot_scans(plan) if n.get("Parent Relationship") != "SubPlan"]
    assert [n["Node Type"] for n in scans] == ["Index Scan"], plan
    assert scans[0]["Index Name"] in (FREE_INDEXES if by_provider else ("slots_free_by_start",))
    assert scans[0].get("Rows Removed by Filter", 0) == 0 and pages(scans[0]) <= 10, scans[0]
    assert not [n for n in plan_nodes(plan) if n["Node Type"] == "Sort"]
    items, _next = slot_store.slots_page(conn, provider_id=provider_id, free=True, start_from=start, start_to=None,
                                         after=None, limit=3)
    assert [item["free"] for item in items] == [True] * 3
    assert items[0]["start"] == start + (HELD + 1) * SLOT_LENGTH


def test_every_provider_is_pain_management_so_the_claim_needs_no_specialty_filter(referral_settings):
    """store._CLAIM leaves out a filter on the provider's specialty (one made the planner
    sort every free slot of the window on tables not analyzed yet): it may, only while the
    providers' CHECK allows no other specialty. Should one come, the claim needs it back."""
    assert "specialty" not in store._CLAIM and "providers" not in store._CLAIM
    with psycopg.connect(referral_settings.database_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO referral.providers (name, specialty, location)"
                         " VALUES ('Other clinic ' || gen_random_uuid(), 'physiotherapy', 'Room 1')")
