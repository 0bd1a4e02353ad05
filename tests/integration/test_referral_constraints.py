"""The booking invariants hold in the database itself, even when the code is bypassed,
and concurrent handlers cannot break them."""
from __future__ import annotations

import contextlib
import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import errors

from tests.referral_support import add_slots, apply, decide, mrn, new_provider, referral_for_report

from services.referral import store

pytestmark = pytest.mark.integration

D = timedelta(days=1)


@pytest.fixture
def scratch(ref_conn):
    """The referral connection inside a transaction that is rolled back: rows written
    behind the code's back (no reports, no history) must not reach other tests' queues."""
    with ref_conn.transaction(force_rollback=True):
        yield ref_conn


@contextlib.contextmanager
def refused(conn, error, match=None):
    """pytest.raises around a savepoint, so the test's transaction goes on afterwards."""
    with pytest.raises(error, match=match), conn.transaction():
        yield


def _insert_referral(conn, patient: str, status: str, slot_id: str | None, now, birth_date: str = "1991-04-02",
                     possible_duplicate_of: str | None = None) -> str:
    referral_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_birth_date, possible_duplicate_of,"
        " patient_display_name, priority, status, slot_id, created_at, window_ends_at, version)"
        " VALUES (%s, %s, %s, %s, 'X', 'routine', %s, %s, %s, %s, 1)",
        (referral_id, patient, birth_date, possible_duplicate_of, status, slot_id, now, now + 14 * D),
    )
    return referral_id


def test_the_database_refuses_a_double_booking_even_when_the_code_is_bypassed(scratch, now):
    slot = add_slots(scratch, new_provider(scratch), [now + D], now)[0]
    _insert_referral(scratch, mrn(), "booked", slot, now)
    with refused(scratch, errors.UniqueViolation, match="referrals_slot_booked_once"):
        _insert_referral(scratch, mrn(), "booked", slot, now)
    # A completed referral keeps its slot, so it cannot be handed out again either.
    with refused(scratch, errors.UniqueViolation):
        _insert_referral(scratch, mrn(), "completed", slot, now)


def test_the_database_refuses_a_second_open_referral_for_a_patient(scratch, now):
    patient = mrn()
    _insert_referral(scratch, patient, "waitlisted", None, now)
    with refused(scratch, errors.UniqueViolation, match="referrals_one_open_per_patient"):
        _insert_referral(scratch, patient, "waitlisted", None, now)
    _insert_referral(scratch, patient, "cancelled", None, now)  # closed ones do not count


def test_a_referral_holds_a_slot_exactly_when_booked_or_completed(scratch, now):
    slot = add_slots(scratch, new_provider(scratch), [now + D], now)[0]
    with refused(scratch, errors.CheckViolation):
        _insert_referral(scratch, mrn(), "waitlisted", slot, now)
    with refused(scratch, errors.CheckViolation):
        _insert_referral(scratch, mrn(), "booked", None, now)


def test_the_database_refuses_overlapping_slots_and_slots_ending_before_they_start(ref_conn, now):
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + D], now)
    insert = ("INSERT INTO referral.slots (provider_id, start_at, end_at) VALUES (%s, %s, %s)")
    with pytest.raises(errors.ExclusionViolation, match="slots_no_overlap"):
        ref_conn.execute(insert, (provider["provider_id"], now + D + timedelta(minutes=15), now + 2 * D))
    with pytest.raises(errors.CheckViolation, match="slots_start_before_end"):
        ref_conn.execute(insert, (provider["provider_id"], now + 3 * D, now + 3 * D))
    # Back to back is fine, and so is the same time at another provider.
    ref_conn.execute(insert, (provider["provider_id"], now + D + timedelta(minutes=30), now + D + timedelta(hours=1)))
    ref_conn.execute(insert, (new_provider(ref_conn)["provider_id"], now + D, now + D + timedelta(minutes=30)))


def test_history_cannot_be_rewritten(ref_conn, now):
    referral_id = referral_for_report(ref_conn, decide(ref_conn, "urgent", mrn(), now))["referral_id"]
    with pytest.raises(errors.RaiseException, match="append-only"):
        ref_conn.execute("UPDATE referral.referral_history SET reason = 'edited' WHERE referral_id = %s",
                         (referral_id,))
    with pytest.raises(errors.RaiseException, match="append-only"):
        ref_conn.execute("DELETE FROM referral.referral_history WHERE referral_id = %s", (referral_id,))


def test_two_workers_racing_for_the_last_slot_book_it_once(referral_settings, ref_conn, now):
    """The first transaction holds the slot (not yet committed); the second skips it."""
    slot = add_slots(ref_conn, new_provider(ref_conn), [now + D], now)[0]
    with psycopg.connect(referral_settings.database_url) as first, \
            psycopg.connect(referral_settings.database_url) as second:
        a = apply(first, "specialist", mrn(), now)        # claims the slot, transaction still open
        b = apply(second, "specialist", mrn(), now)       # SKIP LOCKED: passes over it
        second.commit()
        first.commit()
    assert referral_for_report(ref_conn, a)["slot_id"] == slot
    assert referral_for_report(ref_conn, b)["status"] == "waitlisted"


def test_two_first_reports_of_one_patient_racing_end_in_one_referral(referral_settings, ref_conn, now):
    """The loser hits the open-referral index and raises, so the consumer retries the event;
    the retry links its report to the referral the winner made."""
    patient = mrn()
    outcome = {}
    with psycopg.connect(referral_settings.database_url) as first:
        winner = apply(first, "specialist", patient, now)  # not committed yet

        def loser():
            with psycopg.connect(referral_settings.database_url) as second:
                try:
                    apply(second, "urgent", patient, now, report_id=outcome.setdefault("report", str(uuid.uuid4())))
                except errors.UniqueViolation as exc:
                    outcome["error"] = exc

        thread = threading.Thread(target=loser)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # waiting on the winner's uncommitted row in the unique index
        first.commit()
        thread.join(timeout=10)
    assert "referrals_one_open_per_patient" in str(outcome["error"])

    decide(ref_conn, "urgent", patient, now, report_id=outcome["report"])  # the retry
    referral = referral_for_report(ref_conn, winner)
    assert referral_for_report(ref_conn, outcome["report"])["referral_id"] == referral["referral_id"]
    assert referral["priority"] == "urgent"
    view = store.referral_view(ref_conn, referral["referral_id"], now)
    assert view["report_ids"] == [winner, outcome["report"]]


def test_two_reports_of_one_patient_linked_at_once_are_both_kept(referral_settings, ref_conn, now):
    """Two workers link reports of one patient (on different partitions) at the same moment:
    the second waits for the referral's lock and must then see the first one's link, or its
    own would be lost (a full concurrency run lost one this way)."""
    patient = mrn()
    opening = decide(ref_conn, "specialist", patient, now)
    outcome = {}
    with psycopg.connect(referral_settings.database_url) as first:
        linked_first = apply(first, "specialist", patient, now)  # holds the referral's lock

        def second():
            with psycopg.connect(referral_settings.database_url) as conn:
                outcome["report"] = apply(conn, "specialist", patient, now)
                conn.commit()

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # waiting for the referral's lock
        first.commit()
        thread.join(timeout=10)
    referral_id = referral_for_report(ref_conn, opening)["referral_id"]
    assert store.referral_view(ref_conn, referral_id, now)["report_ids"] == [opening, linked_first, outcome["report"]]
