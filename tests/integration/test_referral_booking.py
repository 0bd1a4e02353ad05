"""The referral worker's handler and the booking use cases against the real database:
booking, waitlist, linking, raise to urgent, breach, history and events."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from tests.referral_support import (
    TRACEPARENT,
    add_slots,
    decide,
    mrn,
    new_provider,
    outbox_events,
    referral_for_report,
)

from services.common.envelope import trace_id
from services.referral import booking, store

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
D = timedelta(days=1)


def test_specialist_report_is_booked_into_the_earliest_free_slot_inside_its_window(ref_conn, now):
    provider = new_provider(ref_conn)
    past, late, later, beyond = now - H, now + 5 * D, now + 3 * D, now + 15 * D
    add_slots(ref_conn, provider, [late, beyond, later], now)
    add_slots(ref_conn, provider, [past + 2 * H], now)  # at now+1h: the earliest of all
    # A slot that has already started is never booked automatically.
    slot_store_insert_past(ref_conn, provider, past)

    report_id = decide(ref_conn, "specialist", mrn(), now)

    referral = referral_for_report(ref_conn, report_id)
    assert referral["status"] == "booked" and referral["priority"] == "routine"
    assert _slot_start(ref_conn, referral["slot_id"]) == now + H
    assert referral["window_ends_at"] == now + 14 * D


def slot_store_insert_past(conn, provider, start):
    from services.referral import slot_store

    with conn.transaction():
        slot_store.insert_slots(conn, provider["provider_id"], [(start, start + timedelta(minutes=30))])


def _slot_start(conn, slot_id):
    return conn.execute("SELECT start_at FROM referral.slots WHERE slot_id = %s", (slot_id,)).fetchone()[0]


def test_urgent_report_without_a_slot_inside_two_days_is_waitlisted(ref_conn, now):
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + 3 * D], now)  # inside 14 days, outside 2

    urgent = referral_for_report(ref_conn, decide(ref_conn, "urgent", mrn(), now))
    routine = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))

    assert (urgent["status"], urgent["priority"], urgent["slot_id"]) == ("waitlisted", "urgent", None)
    assert urgent["window_ends_at"] == now + 2 * D
    assert routine["status"] == "booked"


def test_self_care_makes_no_referral(ref_conn, now):
    report_id = decide(ref_conn, "self_care", mrn(), now)
    assert referral_for_report(ref_conn, report_id) is None


def test_a_replayed_decision_changes_nothing(ref_conn, now):
    patient = mrn()
    report_id = decide(ref_conn, "specialist", patient, now)
    before = referral_for_report(ref_conn, report_id)
    decide(ref_conn, "specialist", patient, now + H, report_id=report_id)  # same report, new event id
    assert referral_for_report(ref_conn, report_id) == before


def test_a_second_report_is_linked_to_the_open_referral(ref_conn, now):
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + 3 * D, now + 4 * D], now)
    patient = mrn()
    first = decide(ref_conn, "specialist", patient, now)
    second = decide(ref_conn, "specialist", patient, now + H)

    referral = referral_for_report(ref_conn, first)
    assert referral_for_report(ref_conn, second)["referral_id"] == referral["referral_id"]
    view = store.referral_view(ref_conn, referral["referral_id"], now + H)
    assert view["report_ids"] == [first, second] and view["report_id"] == first
    assert view["priority"] == "routine"
    assert _slot_start(ref_conn, view["appointment"]["slot_id"]) == now + 3 * D  # kept its slot
    actions = [e["action"] for e in store.history(ref_conn, referral["referral_id"])]
    assert actions == ["created", "report_linked"]
    types = [t for t, *_ in outbox_events(ref_conn, referral["referral_id"])]
    assert types == ["referral.booked", "referral.linked"]


def test_an_urgent_report_raises_a_routine_referral_and_moves_it_into_the_urgent_window(ref_conn, now):
    provider = new_provider(ref_conn)
    patient = mrn()
    far = add_slots(ref_conn, provider, [now + 10 * D], now)[0]
    first = decide(ref_conn, "specialist", patient, now)
    assert referral_for_report(ref_conn, first)["slot_id"] == far
    # Meanwhile someone is waitlisted whose window holds the far slot.
    other = decide(ref_conn, "specialist", mrn(), now + H)
    assert referral_for_report(ref_conn, other)["status"] == "waitlisted"
    near = add_slots(ref_conn, provider, [now + 3 * D], now + 2 * H)[0]  # goes to the waitlisted one
    assert referral_for_report(ref_conn, other)["slot_id"] == near
    soon = add_slots(ref_conn, provider, [now + D + 2 * H], now + 2 * H)[0]  # nobody waiting: stays free

    raised_at = now + D
    second = decide(ref_conn, "urgent", patient, raised_at)

    referral = referral_for_report(ref_conn, first)
    assert referral["priority"] == "urgent"
    assert referral["window_ends_at"] == raised_at + 2 * D  # 2 days after the raise
    assert referral["slot_id"] == soon
    # The far slot it left was free again... and nobody's window holds it now.
    assert store.get_slot(ref_conn, far).is_free
    view = store.referral_view(ref_conn, referral["referral_id"], raised_at)
    assert view["care_level"] == "urgent"
    actions = [e["action"] for e in store.history(ref_conn, referral["referral_id"])]
    assert actions == ["created", "report_linked", "raised_to_urgent", "moved"]
    events = outbox_events(ref_conn, referral["referral_id"])
    assert [t for t, *_ in events] == ["referral.booked", "referral.priority_raised", "referral.rescheduled"]
    # The raise names the report whose link caused it; the move that follows links nothing.
    assert [data.get("linked_report_id") for _, _, data, _ in events] == [None, second, None]


def test_a_raise_never_lengthens_the_window_and_keeps_the_appointment_without_a_better_slot(ref_conn, now):
    provider = new_provider(ref_conn)
    patient = mrn()
    slot = add_slots(ref_conn, provider, [now + 13 * D + 12 * H], now)[0]
    first = decide(ref_conn, "specialist", patient, now)

    raised_at = now + 13 * D  # the routine window ends in 1 day, sooner than 2 days from now
    decide(ref_conn, "urgent", patient, raised_at)

    referral = referral_for_report(ref_conn, first)
    assert referral["window_ends_at"] == now + 14 * D
    assert (referral["priority"], referral["status"], referral["slot_id"]) == ("urgent", "booked", slot)


def test_a_freed_slot_goes_to_the_waitlist_urgent_first_then_oldest(ref_conn, now):
    provider = new_provider(ref_conn)
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    holder = decide(ref_conn, "specialist", mrn(), now)
    old_routine = decide(ref_conn, "specialist", mrn(), now + H)
    urgent = decide(ref_conn, "urgent", mrn(), now + 2 * H)
    young_routine = decide(ref_conn, "specialist", mrn(), now + 3 * H)
    assert referral_for_report(ref_conn, holder)["slot_id"] == slot

    with ref_conn.transaction():
        booking.cancel(ref_conn, referral_for_report(ref_conn, holder)["referral_id"], "patient moved away",
                       actor="sam", now=now + 4 * H, traceparent=TRACEPARENT)

    assert referral_for_report(ref_conn, urgent)["slot_id"] == slot
    second = add_slots(ref_conn, provider, [now + 2 * D], now + 5 * H)[0]
    assert referral_for_report(ref_conn, old_routine)["slot_id"] == second
    assert referral_for_report(ref_conn, young_routine)["status"] == "waitlisted"
    history = store.history(ref_conn, referral_for_report(ref_conn, urgent)["referral_id"])
    assert [(e["action"], e["actor"], e["to_slot_id"]) for e in history] == [
        ("created", "system", None), ("booked", "system", slot)]


def test_a_slot_outside_every_waiting_window_stays_free(ref_conn, now):
    provider = new_provider(ref_conn)
    waiting = decide(ref_conn, "urgent", mrn(), now)
    slot = add_slots(ref_conn, provider, [now + 3 * D], now + H)[0]
    assert referral_for_report(ref_conn, waiting)["status"] == "waitlisted"
    assert store.get_slot(ref_conn, slot).is_free


def test_a_waitlisted_referral_past_its_window_is_breached_and_stays_for_a_scheduler(ref_conn, now):
    provider = new_provider(ref_conn)
    report_id = decide(ref_conn, "urgent", mrn(), now)
    referral_id = referral_for_report(ref_conn, report_id)["referral_id"]
    assert store.referral_view(ref_conn, referral_id, now + D)["breached"] is False

    later = now + 3 * D
    slot = add_slots(ref_conn, provider, [later + H], later)[0]  # after its window: not booked automatically
    view = store.referral_view(ref_conn, referral_id, later)
    assert (view["status"], view["breached"]) == ("waitlisted", True)
    assert store.get_slot(ref_conn, slot).is_free

    with ref_conn.transaction():  # a scheduler books it by hand, outside the window
        booking.reschedule(ref_conn, referral_id, slot, actor="sam", now=later, traceparent=TRACEPARENT)
    view = store.referral_view(ref_conn, referral_id, later)
    assert (view["status"], view["breached"], view["appointment"]["slot_id"]) == ("booked", False, slot)


def test_history_records_who_what_when_and_why(ref_conn, now):
    provider = new_provider(ref_conn)
    first_slot, second_slot = add_slots(ref_conn, provider, [now + D, now + 2 * D], now)
    referral_id = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))["referral_id"]
    with ref_conn.transaction():
        booking.reschedule(ref_conn, referral_id, second_slot, actor="sam", now=now + H, traceparent=TRACEPARENT)
    with ref_conn.transaction():
        booking.complete(ref_conn, referral_id, actor="kim", now=now + 2 * D + H, traceparent=TRACEPARENT)

    history = store.history(ref_conn, referral_id)
    assert [(e["sequence"], e["actor"], e["action"], e["from_status"], e["to_status"]) for e in history] == [
        (1, "system", "created", None, "booked"),
        (2, "sam", "moved", "booked", "booked"),
        (3, "kim", "completed", "booked", "completed"),
    ]
    assert [e["at"] for e in history] == [now, now + H, now + 2 * D + H]
    assert all(e["reason"] for e in history)
    assert (history[1]["from_slot_id"], history[1]["to_slot_id"]) == (first_slot, second_slot)
    # Completed keeps its slot as a record; the one it left is free.
    assert store.get_slot(ref_conn, second_slot).booked_by == referral_id
    assert store.get_slot(ref_conn, first_slot).is_free


def test_every_change_emits_one_snapshot_event_keyed_by_the_first_report(ref_conn, now):
    provider = new_provider(ref_conn)
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    patient = mrn()
    first = decide(ref_conn, "specialist", patient, now)
    second = decide(ref_conn, "specialist", patient, now + H)
    referral_id = referral_for_report(ref_conn, first)["referral_id"]
    with ref_conn.transaction():
        booking.cancel(ref_conn, referral_id, "duplicate", actor="sam", now=now + 2 * H, traceparent=TRACEPARENT)

    events = outbox_events(ref_conn, referral_id)
    assert [t for t, *_ in events] == ["referral.booked", "referral.linked", "referral.cancelled"]
    assert {key for _, key, _, _ in events} == {first}
    assert [data["sequence"] for _, _, data, _ in events] == [1, 2, 3]
    booked, linked, cancelled = (data for _, _, data, _ in events)
    assert set(booked) == {"referral_id", "report_id", "report_count", "care_level", "priority", "status",
                           "sequence", "created_at", "window_ends_at", "appointment"}
    assert booked["appointment"]["slot_id"] == slot
    assert booked["appointment"]["provider"] == provider["name"]
    assert booked["appointment"]["location"] == "Room 1"
    # Issue 15: the first report and a count, plus the report a link linked; never the list.
    assert (booked["report_id"], booked["report_count"], "linked_report_id" in booked) == (first, 1, False)
    assert (linked["report_id"], linked["report_count"], linked["linked_report_id"]) == (first, 2, second)
    assert (cancelled["report_count"], "linked_report_id" in cancelled) == (2, False)
    assert (cancelled["status"], cancelled["appointment"]) == ("cancelled", None)
    assert booked["care_level"] == "specialist" and booked["priority"] == "routine"
    # The trace of the decision goes on in the referral's first event.
    assert trace_id(events[0][3]) == trace_id(TRACEPARENT)


def test_the_event_of_a_slot_given_from_the_waitlist_is_booked(ref_conn, now):
    provider = new_provider(ref_conn)
    referral_id = referral_for_report(ref_conn, decide(ref_conn, "urgent", mrn(), now))["referral_id"]
    add_slots(ref_conn, provider, [now + D], now + H)
    assert [t for t, *_ in outbox_events(ref_conn, referral_id)] == ["referral.waitlisted", "referral.booked"]


def test_unknown_referral_and_slot_are_reported_as_such(ref_conn, now):
    with pytest.raises(booking.UnknownReferral):
        booking.cancel(ref_conn, str(uuid.uuid4()), "x", actor="sam", now=now, traceparent=TRACEPARENT)
    referral_id = referral_for_report(ref_conn, decide(ref_conn, "urgent", mrn(), now))["referral_id"]
    with pytest.raises(booking.UnknownSlot):
        booking.reschedule(ref_conn, referral_id, str(uuid.uuid4()), actor="sam", now=now,
                           traceparent=TRACEPARENT)
