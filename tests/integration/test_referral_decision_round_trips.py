"""A new patient's decision (issue 15) waits for the server twice: the first reads with the
claim of a slot, then the end of its pipeline. The new referral's view is then built from
what was stored instead of read back: its event must be the one a read would have given."""
from __future__ import annotations

import os
import tempfile
from datetime import timedelta

import psycopg
import pytest
from psycopg import pq

from services.referral import events, store
from tests.referral_support import add_slots, apply, decide, mrn, new_provider, outbox_events, referral_for_report

pytestmark = pytest.mark.integration

D = timedelta(days=1)


@pytest.fixture
def recorded_views(monkeypatch):
    """Every view store.created_referral_view builds, in order."""
    built = []
    original = store.created_referral_view

    def record(*args, **kwargs):
        view = original(*args, **kwargs)
        built.append(view)
        return view

    monkeypatch.setattr(store, "created_referral_view", record)
    return built


@pytest.mark.parametrize("care_level, slot_inside", [("specialist", True), ("urgent", False)],
                         ids=["booked", "waitlisted"])
def test_a_new_referrals_view_and_event_are_what_a_read_gives(ref_conn, now, recorded_views, care_level,
                                                              slot_inside):
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + (D if slot_inside else 5 * D)], now)

    referral = referral_for_report(ref_conn, decide(ref_conn, care_level, mrn(), now))

    assert referral["status"] == ("booked" if slot_inside else "waitlisted")
    assert len(recorded_views) == 1  # the view was built, not read
    read = store.referral_view(ref_conn, referral["referral_id"], now)
    assert recorded_views[0] == read
    [(event_type, key, data, _tp)] = outbox_events(ref_conn, referral["referral_id"])
    assert event_type == ("referral.booked" if slot_inside else "referral.waitlisted")
    assert key == read["report_id"]
    assert data == events.snapshot_data(read)


def test_a_possible_duplicate_is_claimed_and_read_the_usual_way(ref_conn, now, recorded_views):
    """An open referral with the MRN (another birth date): no claim in the first round trip;
    the new referral is booked by claim_free_slot and its view read back."""
    provider = new_provider(ref_conn)
    first_slot, second_slot = add_slots(ref_conn, provider, [now + D, now + 2 * D], now)
    patient = mrn()
    decide(ref_conn, "specialist", patient, now)
    assert len(recorded_views) == 1

    other = referral_for_report(ref_conn, decide(ref_conn, "specialist", patient, now, birth_date="1970-01-01"))

    assert len(recorded_views) == 1
    assert other["slot_id"] == second_slot
    [(_type, _key, data, _tp)] = outbox_events(ref_conn, other["referral_id"])
    assert data == events.snapshot_data(store.referral_view(ref_conn, other["referral_id"], now))


def waits(trace: str) -> int:
    """How many times the client sent its queued messages and then read the server's answers,
    in a libpq trace: a run of frontend (F) lines followed by backend (B) lines."""
    sides = [line.split("\t", 1)[0] for line in trace.splitlines() if line[:2] in ("F\t", "B\t")]
    return sum(1 for before, after in zip(sides, sides[1:]) if (before, after) == ("F", "B"))


def test_a_new_patients_decision_waits_for_the_server_twice(referral_settings, ref_conn, now):
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + D], now)
    with psycopg.connect(referral_settings.database_url) as conn, tempfile.TemporaryFile("w+") as trace:
        conn.execute("SELECT 1").fetchone()  # connected, settled
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            report_id = apply(conn, "specialist", mrn(), now)
        finally:
            conn.pgconn.untrace()
        conn.commit()
        trace.seek(0)
        text = trace.read()
    assert referral_for_report(ref_conn, report_id)["status"] == "booked"
    assert waits(text) == 2, text
