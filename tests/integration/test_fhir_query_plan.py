"""The FHIR searches stay index-backed on big tables: for every search shape, no sort and no
sequential scan, and a deep page reads no more of the index than a page near the front.
100,000 referrals and 20,000 slots (10,000 booked) are generated in a transaction that is
rolled back, so the shared database is left as it was. Run with -s to see the plans."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import psycopg
import pytest

from services.referral.fhir import store
from services.referral.fhir.search import parse_search
from tests.referral_support import next_bubble, plan_nodes

pytestmark = pytest.mark.integration

REFERRALS, SLOTS = 100_000, 20_000


@pytest.fixture(scope="module")
def big(referral_settings):
    """(connection inside the transaction holding the generated rows, bubble start)."""
    start = next_bubble()
    with psycopg.connect(referral_settings.database_url) as conn:
        [(provider,)] = conn.execute(
            "INSERT INTO referral.providers (name, specialty, location) VALUES (%s, 'pain_management', 'Room P')"
            " RETURNING provider_id", (f"FHIR plan {uuid.uuid4()}",)).fetchall()
        conn.execute(
            "INSERT INTO referral.slots (provider_id, start_at, end_at)"
            " SELECT %(p)s, %(start)s + i * interval '30 minutes', %(start)s + i * interval '30 minutes'"
            "  + interval '20 minutes' FROM generate_series(1, %(slots)s) AS i",
            {"p": provider, "start": start, "slots": SLOTS})
        # Every tenth referral booked into a slot (half the slots); of the others a quarter
        # waitlisted, the rest cancelled; one in five urgent.
        conn.execute(
            "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_display_name, priority, status, slot_id,"
            " created_at, window_ends_at, version, updated_at)"
            " SELECT gen_random_uuid(), 'FPLAN-' || i, 'Plan Patient',"
            "  CASE WHEN i %% 5 = 0 THEN 'urgent' ELSE 'routine' END,"
            "  CASE WHEN s.slot_id IS NOT NULL THEN 'booked' WHEN i %% 4 = 0 THEN 'waitlisted' ELSE 'cancelled' END,"
            "  s.slot_id, %(start)s + i * interval '1 minute', %(start)s + i * interval '1 minute' + interval '14 days',"
            "  1, %(start)s + i * interval '1 minute' + (i %% 97) * interval '1 second'"
            " FROM generate_series(1, %(rows)s) AS i LEFT JOIN (SELECT slot_id, row_number() OVER (ORDER BY start_at)"
            "  AS n FROM referral.slots WHERE provider_id = %(p)s) s ON i %% 10 = 0 AND s.n * 20 = i",
            {"start": start, "rows": REFERRALS, "p": provider})
        conn.execute("ANALYZE referral.referrals")
        conn.execute("ANALYZE referral.slots")
        yield conn, start, str(provider)
        conn.rollback()


def keys_at(conn, order: str, i: int) -> tuple:
    """The page key of generated referral i (or, in start order, of the slot it holds or the
    i-th slot): a cursor into the generated rows."""
    if order == store.START_ORDER:
        return conn.execute("SELECT start_at, slot_id::text FROM referral.slots WHERE start_at >= "
                            "(SELECT min(start_at) FROM referral.slots s JOIN referral.providers p USING (provider_id)"
                            "  WHERE p.location = 'Room P') + %s * interval '30 minutes'"
                            " ORDER BY start_at, slot_id LIMIT 1", (i // 20,)).fetchone()
    row = conn.execute("SELECT priority_rank, created_at, updated_at, referral_id::text FROM referral.referrals"
                       " WHERE patient_mrn = %s", (f"FPLAN-{i}",)).fetchone()
    return (row[0], row[1], row[3]) if order == store.QUEUE_ORDER else (row[2], row[3])


def cases(start, provider) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    since, until = start.isoformat(), (start + timedelta(days=59)).isoformat()
    return {
        "SR everything": ("ServiceRequest", []),
        "SR active": ("ServiceRequest", [("status", "active")]),
        "SR revoked": ("ServiceRequest", [("status", "revoked")]),
        "SR urgent": ("ServiceRequest", [("priority", "urgent")]),
        "SR active routine": ("ServiceRequest", [("status", "active"), ("priority", "routine")]),
        "SR patient identifier": ("ServiceRequest", [("patient.identifier", "fplan-50000")]),
        "SR lastUpdated": ("ServiceRequest", [("_lastUpdated", f"ge{since}"), ("_lastUpdated", f"lt{until}")]),
        "SR lastUpdated active": ("ServiceRequest", [("_lastUpdated", f"ge{since}"), ("status", "active")]),
        "Appointment everything": ("Appointment", []),
        "Appointment dates": ("Appointment", [("date", f"ge{since}"), ("date", f"lt{until}")]),
        "Appointment booked": ("Appointment", [("status", "booked")]),
        "Slot everything": ("Slot", []),
        "Slot schedule": ("Slot", [("schedule", f"Schedule/{provider}")]),
        "Slot schedule free": ("Slot", [("schedule", f"Schedule/{provider}"), ("status", "free")]),
        "Slot free": ("Slot", [("status", "free"), ("start", f"ge{since}")]),
        "Slot busy": ("Slot", [("status", "busy")]),
        "Slot schedule busy": ("Slot", [("schedule", f"Schedule/{provider}"), ("status", "busy")]),
    }


QUERIES = {"ServiceRequest": store.service_request_query, "Appointment": store.appointment_query,
           "Slot": store.slot_query}


def explain(conn, resource_type: str, args, at: int | None) -> dict:
    search = parse_search(resource_type, [*args, ("_count", "50")], lenient=False)
    order = store.service_request_order(search) if resource_type == "ServiceRequest" else store.START_ORDER
    query = QUERIES[resource_type](search, keys_at(conn, order, at) if at is not None else None)
    return conn.execute(psycopg.sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + query.sql,
                        query.params).fetchone()[0][0]


def _walked(plan: dict) -> list[dict]:
    return [n for n in plan_nodes(plan) if n.get("Relation Name") in ("referrals", "slots")]


CASE_NAMES = list(cases(next_bubble(), "x"))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_every_search_walks_an_index_in_order(big, case):
    conn, start, provider = big
    resource_type, args = cases(start, provider)[case]
    for at in (None, 50_000):
        plan = explain(conn, resource_type, args, at)
        kinds = [node["Node Type"] for node in plan_nodes(plan)]
        print(f"\n{case} ({at}): {[(n['Node Type'], n.get('Index Name')) for n in _walked(plan)]}")
        assert "Sort" not in kinds and "Incremental Sort" not in kinds, json.dumps(plan)
        assert all(n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan")
                   for n in _walked(plan)), json.dumps(plan)
        assert "Seq Scan" not in kinds or all(n.get("Relation Name") == "providers" for n in plan_nodes(plan)
                                              if n["Node Type"] == "Seq Scan"), json.dumps(plan)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_a_deep_page_costs_what_a_front_page_costs(big, case):
    conn, start, provider = big
    resource_type, args = cases(start, provider)[case]
    blocks = []
    for at in (200, 50_000):
        plan = explain(conn, resource_type, args, at)
        blocks.append(sum(n["Shared Hit Blocks"] + n.get("Shared Read Blocks", 0) for n in _walked(plan)))
    print(f"\n{case}: blocks near the front {blocks[0]}, deep {blocks[1]}")
    assert blocks[1] <= blocks[0] + 20, blocks
