"""What a triage decision does: create, link, raise and re-place referrals."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from uuid import UUID

import pytest

from services.referral.domain import (
    CreateReferral,
    NothingToDo,
    Referral,
    Slot,
    UpdateReferral,
    Windows,
    create_referral,
    on_new_decision,
    place_within_window,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
REPORT = UUID(int=901)
NEW_REPORT = UUID(int=902)
REFERRAL_ID = UUID(int=500)


def make_slot(n, start, booked_by=None):
    return Slot(UUID(int=n), UUID(int=1000), start, start + HOUR, booked_by)


def open_referral(
    priority="routine", status="waitlisted", slot_id=None, created_at=T0 - DAY, window_ends_at=None
):
    if window_ends_at is None:
        window_ends_at = created_at + (2 * DAY if priority == "urgent" else 14 * DAY)
    return Referral(
        referral_id=REFERRAL_ID,
        patient_mrn="MRN-1",
        priority=priority,
        status=status,
        created_at=created_at,
        window_ends_at=window_ends_at,
        slot_id=slot_id,
        report_ids=(REPORT,),
    )


# --- on_new_decision ---------------------------------------------------------


@pytest.mark.parametrize("existing", [None, open_referral()])
def test_self_care_needs_nothing(existing):
    assert isinstance(on_new_decision(existing, "self_care", NEW_REPORT, T0), NothingToDo)


@pytest.mark.parametrize(
    "care_level, priority, window_ends_at",
    [("urgent", "urgent", T0 + 2 * DAY), ("specialist", "routine", T0 + 14 * DAY)],
)
def test_without_an_open_referral_a_new_one_is_planned(care_level, priority, window_ends_at):
    plan = on_new_decision(None, care_level, REPORT, T0)
    assert plan == CreateReferral(REPORT, priority, T0, window_ends_at)


def test_window_lengths_come_from_the_rule_file_settings():
    plan = on_new_decision(None, "urgent", REPORT, T0, Windows.from_days(urgent_days=1, routine_days=10))
    assert plan.window_ends_at == T0 + DAY


@pytest.mark.parametrize(
    "care_level, existing",
    [
        ("specialist", open_referral("routine")),
        ("specialist", open_referral("urgent")),  # never lowered
        ("urgent", open_referral("urgent")),
        ("specialist", open_referral("routine", "booked", UUID(int=3))),
    ],
)
def test_a_report_for_a_patient_with_an_open_referral_is_linked(care_level, existing):
    plan = on_new_decision(existing, care_level, NEW_REPORT, T0)

    assert isinstance(plan, UpdateReferral) and not plan.needs_placement
    changed = plan.change.referral
    assert changed == replace(existing, report_ids=(REPORT, NEW_REPORT))
    (entry,) = plan.change.history
    assert (entry.action, entry.from_status, entry.to_status, entry.at, entry.actor) == (
        "report_linked",
        existing.status,
        existing.status,
        T0,
        "system",
    )
    assert str(NEW_REPORT) in entry.reason
    assert plan.change.booked_slot_id is None and plan.change.freed_slot_id is None


def test_a_report_already_linked_is_not_linked_twice():
    plan = on_new_decision(open_referral(), "specialist", REPORT, T0)
    assert isinstance(plan, NothingToDo)


@pytest.mark.parametrize(
    "routine_window_ends_at, expected_end",
    [
        (T0 + 13 * DAY, T0 + 2 * DAY),  # 2 days after the raise
        (T0 + DAY, T0 + DAY),  # the routine window already ended sooner
        (T0 + 2 * DAY, T0 + 2 * DAY),
    ],
)
def test_an_urgent_report_raises_a_routine_referral(routine_window_ends_at, expected_end):
    existing = open_referral("routine", window_ends_at=routine_window_ends_at)

    plan = on_new_decision(existing, "urgent", NEW_REPORT, T0)

    assert isinstance(plan, UpdateReferral) and plan.needs_placement
    raised = plan.change.referral
    assert raised.priority == "urgent"
    assert raised.window_ends_at == expected_end
    assert raised.report_ids == (REPORT, NEW_REPORT)
    assert (raised.status, raised.created_at) == (existing.status, existing.created_at)
    assert [e.action for e in plan.change.history] == ["report_linked", "raised_to_urgent"]


def test_a_closed_referral_is_not_an_open_one():
    closed = open_referral(status="cancelled")
    with pytest.raises(ValueError, match="open referral"):
        on_new_decision(closed, "urgent", NEW_REPORT, T0)


# --- create_referral ---------------------------------------------------------


def test_a_new_referral_is_booked_into_the_earliest_free_slot_in_its_window():
    plan = CreateReferral(REPORT, "urgent", T0, T0 + 2 * DAY)
    free = [
        make_slot(1, T0 + DAY),
        make_slot(2, T0 + HOUR),
        make_slot(3, T0 - HOUR),  # in the past
        make_slot(4, T0 + 3 * DAY),  # after the window
    ]

    change = create_referral(plan, referral_id=REFERRAL_ID, patient_mrn="MRN-1", free_slots=free)

    assert change.referral == Referral(
        REFERRAL_ID, "MRN-1", "urgent", "booked", T0, T0 + 2 * DAY, UUID(int=2), (REPORT,)
    )
    assert change.booked_slot_id == UUID(int=2) and change.freed_slot_id is None
    (entry,) = change.history
    assert (entry.action, entry.from_status, entry.to_status, entry.at, entry.to_slot_id) == (
        "created",
        None,
        "booked",
        T0,
        UUID(int=2),
    )


def test_a_new_referral_without_a_free_slot_in_its_window_is_waitlisted():
    plan = CreateReferral(REPORT, "urgent", T0, T0 + 2 * DAY)
    free = [make_slot(1, T0 + 3 * DAY), make_slot(2, T0 + HOUR, booked_by=UUID(int=77))]

    change = create_referral(plan, referral_id=REFERRAL_ID, patient_mrn="MRN-1", free_slots=free)

    assert change.referral.status == "waitlisted"
    assert change.referral.slot_id is None and change.booked_slot_id is None
    assert change.history[0].to_status == "waitlisted"
    assert "waitlisted" in change.history[0].reason


# --- place_within_window (after a raise) -------------------------------------


def raised(status="booked", slot_id=UUID(int=3)):
    return open_referral("urgent", status, slot_id, created_at=T0 - 5 * DAY, window_ends_at=T0 + 2 * DAY)


def test_a_raised_booking_after_the_new_window_moves_to_a_free_slot_inside_it():
    current = make_slot(3, T0 + 8 * DAY, booked_by=REFERRAL_ID)
    free = [make_slot(4, T0 + DAY), make_slot(5, T0 + 5 * HOUR)]

    change = place_within_window(raised(), current, free, T0)

    assert (change.referral.status, change.referral.slot_id) == ("booked", UUID(int=5))
    assert (change.booked_slot_id, change.freed_slot_id) == (UUID(int=5), UUID(int=3))
    (entry,) = change.history
    assert (entry.action, entry.actor) == ("moved", "system")
    assert (entry.from_slot_id, entry.to_slot_id) == (UUID(int=3), UUID(int=5))


@pytest.mark.parametrize("current_start", [T0 + DAY, T0 + 2 * DAY, T0 - HOUR])
def test_a_raised_booking_inside_the_new_window_stays(current_start):
    current = make_slot(3, current_start, booked_by=REFERRAL_ID)
    assert place_within_window(raised(), current, [make_slot(4, T0 + HOUR)], T0) is None


def test_a_raised_booking_keeps_its_later_slot_when_nothing_is_free_inside():
    current = make_slot(3, T0 + 8 * DAY, booked_by=REFERRAL_ID)
    free = [make_slot(4, T0 + 3 * DAY), make_slot(5, T0 - HOUR)]
    assert place_within_window(raised(), current, free, T0) is None


def test_a_raised_waitlisted_referral_is_booked_if_a_slot_is_free_inside():
    change = place_within_window(raised("waitlisted", None), None, [make_slot(4, T0 + DAY)], T0)
    assert (change.referral.status, change.referral.slot_id) == ("booked", UUID(int=4))
    assert change.freed_slot_id is None
    assert change.history[0].action == "booked"


def test_a_raised_waitlisted_referral_stays_waitlisted_without_a_slot():
    assert place_within_window(raised("waitlisted", None), None, [make_slot(4, T0 + 3 * DAY)], T0) is None


def test_the_whole_raise_from_decision_to_move():
    existing = open_referral("routine", "booked", UUID(int=3), created_at=T0 - DAY)
    plan = on_new_decision(existing, "urgent", NEW_REPORT, T0)
    current = make_slot(3, T0 + 10 * DAY, booked_by=REFERRAL_ID)

    move = place_within_window(plan.change.referral, current, [make_slot(4, T0 + DAY)], T0)

    assert (move.referral.priority, move.referral.window_ends_at) == ("urgent", T0 + 2 * DAY)
    assert (move.referral.slot_id, move.freed_slot_id) == (UUID(int=4), UUID(int=3))
    assert move.referral.report_ids == (REPORT, NEW_REPORT)


@pytest.mark.parametrize(
    "referral, current",
    [
        (raised("booked", UUID(int=3)), None),
        (raised("booked", UUID(int=3)), make_slot(9, T0 + 8 * DAY, booked_by=REFERRAL_ID)),
        (raised("waitlisted", None), make_slot(9, T0 + 8 * DAY)),
        (open_referral("urgent", "cancelled", None), None),
    ],
)
def test_placement_refuses_a_mismatched_current_slot_or_closed_referral(referral, current):
    with pytest.raises(ValueError):
        place_within_window(referral, current, [], T0)
