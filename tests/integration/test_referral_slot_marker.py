"""The slot's `booked` marker (migrations/006) says "a referral holds this slot" after every
path that gives, moves, frees or keeps a slot: booking, a waitlisted referral filled by a
new slot, a move by hand, a raise to urgent, a cancel (with and without someone waiting),
completion, the retention purge, and SQL written by hand (the triggers, not the code, keep
it). Each check compares the marker with the referrals themselves."""
from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from services.common.retention import RetentionPolicy
from services.referral import booking, slot_store, store
from tests.referral_support import TRACEPARENT, add_slots, apply, decide, mrn, new_provider, referral_for_report

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
D = timedelta(days=1)


def markers(conn, provider: dict) -> dict[str, tuple[bool, bool]]:
    """slot id -> (its marker, whether a referral holds it), for the provider's slots."""
    rows = conn.execute(
        "SELECT s.slot_id::text, s.booked, EXISTS (SELECT 1 FROM referral.referrals r WHERE r.slot_id = s.slot_id)"
        " FROM referral.slots s WHERE s.provider_id = %s", (provider["provider_id"],)).fetchall()
    return {slot_id: (booked, held) for slot_id, booked, held in rows}


def booked_slots(conn, provider: dict) -> set[str]:
    """The provider's slots marked booked, after checking that every marker tells the truth."""
    found = markers(conn, provider)
    wrong = {slot_id: pair for slot_id, pair in found.items() if pair[0] != pair[1]}
    assert not wrong, f"marker differs from the referrals for {wrong}"
    return {slot_id for slot_id, (booked, _held) in found.items() if booked}


def no_marker_lies_anywhere(conn) -> None:
    count = conn.execute(
        "SELECT count(*) FROM referral.slots s"
        " WHERE s.booked <> EXISTS (SELECT 1 FROM referral.referrals r WHERE r.slot_id = s.slot_id)").fetchone()[0]
    assert count == 0


def test_a_new_slot_is_free_and_a_booking_marks_exactly_its_slot(ref_conn, now):
    provider = new_provider(ref_conn)
    first, second = add_slots(ref_conn, provider, [now + D, now + 2 * D], now)
    assert booked_slots(ref_conn, provider) == set()

    referral = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))

    assert referral["slot_id"] == first
    assert booked_slots(ref_conn, provider) == {first}
    assert slot_store.count_free(ref_conn, provider["provider_id"], since=now) == 1
    no_marker_lies_anywhere(ref_conn)


def test_a_slot_added_for_a_waitlisted_referral_is_marked_when_it_is_given(ref_conn, now):
    provider = new_provider(ref_conn)
    waiting = referral_for_report(ref_conn, decide(ref_conn, "urgent", mrn(), now))
    assert waiting["status"] == "waitlisted"

    given, spare = add_slots(ref_conn, provider, [now + D, now + 5 * D], now)  # urgent: only the first fits

    assert store.get_slot(ref_conn, given).booked_by == waiting["referral_id"]
    assert booked_slots(ref_conn, provider) == {given}
    assert spare not in booked_slots(ref_conn, provider)


def test_a_move_by_hand_frees_the_old_slot_and_marks_the_new_one(ref_conn, now):
    provider = new_provider(ref_conn)
    old, new = add_slots(ref_conn, provider, [now + D, now + 3 * D], now)
    referral = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))
    assert booked_slots(ref_conn, provider) == {old}

    booking.reschedule(ref_conn, referral["referral_id"], new, actor="scheduler:test", now=now + H,
                       traceparent=TRACEPARENT)

    assert booked_slots(ref_conn, provider) == {new}


def test_a_waitlisted_referral_booked_by_hand_marks_its_slot(ref_conn, now):
    provider = new_provider(ref_conn)
    waiting = referral_for_report(ref_conn, decide(ref_conn, "urgent", mrn(), now))
    assert waiting["status"] == "waitlisted"
    # Outside the urgent window: not given automatically, but a scheduler may book it.
    late = add_slots(ref_conn, provider, [now + 6 * D], now)[0]
    assert booked_slots(ref_conn, provider) == set()

    booking.reschedule(ref_conn, waiting["referral_id"], late, actor="scheduler:test", now=now + H,
                       traceparent=TRACEPARENT)

    assert booked_slots(ref_conn, provider) == {late}


def test_a_raise_to_urgent_moves_the_marker_to_the_nearer_slot(ref_conn, now):
    provider = new_provider(ref_conn)
    far = add_slots(ref_conn, provider, [now + 10 * D], now)[0]
    patient = mrn()
    first = decide(ref_conn, "specialist", patient, now)
    assert booked_slots(ref_conn, provider) == {far}
    near = add_slots(ref_conn, provider, [now + D], now + H)[0]  # nobody waiting: stays free
    assert booked_slots(ref_conn, provider) == {far}

    decide(ref_conn, "urgent", patient, now + 2 * H)

    assert referral_for_report(ref_conn, first)["slot_id"] == near
    assert booked_slots(ref_conn, provider) == {near}


def test_a_cancel_frees_the_slot_when_nobody_waits(ref_conn, now):
    provider = new_provider(ref_conn)
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    referral = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))
    assert booked_slots(ref_conn, provider) == {slot}

    booking.cancel(ref_conn, referral["referral_id"], "patient declined", actor="scheduler:test", now=now + H,
                   traceparent=TRACEPARENT)

    assert booked_slots(ref_conn, provider) == set()
    assert store.get_slot(ref_conn, slot).is_free
    # Free again, so the next patient gets it.
    assert referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now + 2 * H))["slot_id"] == slot
    assert booked_slots(ref_conn, provider) == {slot}


def test_a_cancelled_slot_given_to_the_waitlist_stays_marked(ref_conn, now):
    provider = new_provider(ref_conn)
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    leaving = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))
    waiting_report = decide(ref_conn, "specialist", mrn(), now + H)
    assert referral_for_report(ref_conn, waiting_report)["status"] == "waitlisted"

    booking.cancel(ref_conn, leaving["referral_id"], "patient declined", actor="scheduler:test", now=now + 2 * H,
                   traceparent=TRACEPARENT)

    assert referral_for_report(ref_conn, waiting_report)["slot_id"] == slot
    assert booked_slots(ref_conn, provider) == {slot}


def test_completion_and_the_identity_purge_keep_the_slot_marked(ref_conn, now):
    provider = new_provider(ref_conn)
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    referral = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))
    booking.complete(ref_conn, referral["referral_id"], actor="scheduler:test", now=now + 2 * D,
                     traceparent=TRACEPARENT)
    assert booked_slots(ref_conn, provider) == {slot}  # a completed referral keeps its slot as a record

    with ref_conn.transaction():
        ref_conn.execute("UPDATE referral.referrals SET updated_at = now() - interval '40 days'"
                         " WHERE referral_id = %s", (referral["referral_id"],))
    while store.pseudonymise_batch(ref_conn, RetentionPolicy(30), b"k" * 32, 1000):
        pass
    pseudonymised = ref_conn.execute("SELECT pseudonymised_at IS NOT NULL, slot_id::text FROM referral.referrals"
                                     " WHERE referral_id = %s", (referral["referral_id"],)).fetchone()
    assert pseudonymised == (True, slot)
    assert booked_slots(ref_conn, provider) == {slot}


# -- SQL by hand: the triggers keep the marker, whoever writes --------------------------
def _hand_referral(conn, slot_id: str | None, status: str) -> str:
    referral_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_display_name, priority, status, slot_id,"
        " created_at, window_ends_at, version) VALUES (%s, %s, 'By Hand', 'routine', %s, %s, now(), now(), 1)",
        (referral_id, mrn(), status, slot_id))
    return referral_id


def test_writing_the_marker_by_hand_cannot_make_it_lie(ref_conn, now):
    provider = new_provider(ref_conn)
    held, free = add_slots(ref_conn, provider, [now + D, now + 2 * D], now)
    decide(ref_conn, "specialist", mrn(), now)
    assert booked_slots(ref_conn, provider) == {held}

    with ref_conn.transaction():
        ref_conn.execute("UPDATE referral.slots SET booked = NOT booked WHERE provider_id = %s",
                         (provider["provider_id"],))
        assert booked_slots(ref_conn, provider) == {held}
        start = now + 3 * D
        inserted = ref_conn.execute(
            "INSERT INTO referral.slots (provider_id, start_at, end_at, booked) VALUES (%s, %s, %s, true)"
            " RETURNING slot_id::text", (provider["provider_id"], start, start + H)).fetchone()[0]
        assert inserted not in booked_slots(ref_conn, provider)
    assert booked_slots(ref_conn, provider) == {held}


def test_referrals_inserted_updated_and_deleted_by_hand_keep_the_marker(ref_conn, now):
    provider = new_provider(ref_conn)
    a, b, c = add_slots(ref_conn, provider, [now + D, now + 2 * D, now + 3 * D], now)
    try:
        with ref_conn.transaction():
            first = _hand_referral(ref_conn, a, "booked")
            second = _hand_referral(ref_conn, b, "completed")
            assert booked_slots(ref_conn, provider) == {a, b}
            # One statement moving one referral and freeing the other.
            ref_conn.execute(
                "UPDATE referral.referrals SET slot_id = CASE referral_id WHEN %s THEN %s::uuid END,"
                " status = CASE referral_id WHEN %s THEN 'booked' ELSE 'cancelled' END"
                " WHERE referral_id IN (%s, %s)", (first, c, first, first, second))
            assert booked_slots(ref_conn, provider) == {c}
            # An update that names slot_id without changing it leaves the marker alone.
            ref_conn.execute("UPDATE referral.referrals SET slot_id = slot_id WHERE referral_id = %s", (first,))
            assert booked_slots(ref_conn, provider) == {c}
            ref_conn.execute("DELETE FROM referral.referrals WHERE referral_id = %s", (first,))
            assert booked_slots(ref_conn, provider) == set()
            raise _Undo
    except _Undo:
        pass
    assert booked_slots(ref_conn, provider) == set()


def test_truncating_referrals_frees_every_slot(ref_conn, now):
    provider = new_provider(ref_conn)
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    decide(ref_conn, "specialist", mrn(), now)
    assert booked_slots(ref_conn, provider) == {slot}
    try:
        with ref_conn.transaction():  # rolled back: the shared database keeps its referrals
            ref_conn.execute("TRUNCATE referral.referrals CASCADE")
            assert ref_conn.execute("SELECT count(*) FROM referral.slots WHERE booked").fetchone()[0] == 0
            raise _Undo
    except _Undo:
        pass
    assert booked_slots(ref_conn, provider) == {slot}


class _Undo(Exception):
    pass


def test_a_booking_committed_after_a_claimers_snapshot_is_not_claimed_again(referral_settings, ref_conn, now):
    """Two workers: while the first books a slot, the second passes over it (SKIP LOCKED);
    once the first has committed, the marker keeps the second off it: it gets the next one."""
    provider = new_provider(ref_conn)
    first_slot, second_slot = add_slots(ref_conn, provider, [now + D, now + 2 * D], now)
    with psycopg.connect(referral_settings.database_url) as one, psycopg.connect(referral_settings.database_url) as two:
        report_id = apply(one, "specialist", mrn(), now)  # booked, not committed
        assert store.claim_free_slot(two, now, now + 14 * D).slot_id == second_slot
        two.rollback()
        one.commit()
        assert referral_for_report(ref_conn, report_id)["slot_id"] == first_slot
        assert store.claim_free_slot(two, now, now + 14 * D).slot_id == second_slot
        two.rollback()
    assert booked_slots(ref_conn, provider) == {first_slot}
    no_marker_lies_anywhere(ref_conn)


def test_the_marker_triggers_ask_the_referrals_in_their_own_statements(ref_conn):
    """Migration 007: no call of referral.slot_is_held (SQL with a subquery, never inlined:
    planned again at every call, twice a booking) in the triggers that keep the marker."""
    bodies = dict(ref_conn.execute(
        "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'referral'::regnamespace"
        " AND proname IN ('slot_booked_from_referrals', 'referral_slot_changed')").fetchall())
    assert set(bodies) == {"slot_booked_from_referrals", "referral_slot_changed"}
    for name, body in bodies.items():
        assert "slot_is_held" not in body and "EXISTS (SELECT 1 FROM referral.referrals r" in body, name
