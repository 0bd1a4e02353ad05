"""The referral state machine behind the schedulers' actions."""

from datetime import datetime, timedelta, timezone
from uuid import UUID

import pytest

from services.referral.domain import (
    INVALID_TRANSITION,
    REASON_REQUIRED,
    SLOT_TAKEN,
    InvalidCommand,
    Referral,
    Slot,
    TransitionError,
    cancel,
    complete,
    reschedule,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
REFERRAL_ID = UUID(int=500)
CURRENT_SLOT = UUID(int=3)
SCHEDULER = "scheduler:ana"


def make_slot(n, start, booked_by=None):
    return Slot(UUID(int=n), UUID(int=1000), start, start + HOUR, booked_by)


def make_referral(status):
    holds_slot = status in ("booked", "completed")
    return Referral(
        referral_id=REFERRAL_ID,
        patient_mrn="MRN-1",
        priority="urgent",
        status=status,
        created_at=T0 - 3 * DAY,
        window_ends_at=T0 - DAY,
        slot_id=CURRENT_SLOT if holds_slot else None,
        report_ids=(UUID(int=901),),
    )


FREE = make_slot(7, T0 + 30 * DAY)  # far outside the window: schedulers may choose it


# --- reschedule --------------------------------------------------------------


@pytest.mark.parametrize(
    "status, action, freed",
    [("waitlisted", "booked", None), ("booked", "moved", CURRENT_SLOT)],
)
def test_reschedule_books_or_moves_into_the_chosen_slot(status, action, freed):
    referral = make_referral(status)

    change = reschedule(referral, FREE, T0, actor=SCHEDULER)

    assert (change.referral.status, change.referral.slot_id) == ("booked", FREE.slot_id)
    assert change.referral.window_ends_at == referral.window_ends_at  # not held to, not changed
    assert (change.booked_slot_id, change.freed_slot_id) == (FREE.slot_id, freed)
    (entry,) = change.history
    assert (entry.actor, entry.action, entry.from_status, entry.to_status, entry.at) == (
        SCHEDULER,
        action,
        status,
        "booked",
        T0,
    )
    assert (entry.from_slot_id, entry.to_slot_id) == (referral.slot_id, FREE.slot_id)


def test_a_scheduler_may_choose_a_slot_that_already_started():
    change = reschedule(make_referral("waitlisted"), make_slot(8, T0 - HOUR), T0, actor=SCHEDULER)
    assert change.referral.slot_id == UUID(int=8)


@pytest.mark.parametrize(
    "status, target, code, reason",
    [
        ("cancelled", FREE, INVALID_TRANSITION, "cannot reschedule a cancelled referral"),
        ("completed", FREE, INVALID_TRANSITION, "cannot reschedule a completed referral"),
        (
            "waitlisted",
            make_slot(7, T0 + DAY, booked_by=UUID(int=77)),
            SLOT_TAKEN,
            f"slot {UUID(int=7)} is already booked",
        ),
        (
            "booked",
            make_slot(3, T0 + DAY, booked_by=REFERRAL_ID),
            SLOT_TAKEN,
            f"the referral is already booked into slot {UUID(int=3)}",
        ),
    ],
)
def test_reschedule_refuses_closed_referrals_and_taken_slots(status, target, code, reason):
    with pytest.raises(TransitionError) as refused:
        reschedule(make_referral(status), target, T0, actor=SCHEDULER)
    assert (refused.value.code, refused.value.reason) == (code, reason)


# --- cancel ------------------------------------------------------------------


@pytest.mark.parametrize("status, freed", [("booked", CURRENT_SLOT), ("waitlisted", None)])
def test_cancel_closes_an_open_referral_and_frees_its_slot(status, freed):
    change = cancel(make_referral(status), "  patient moved away ", now=T0, actor=SCHEDULER)

    assert (change.referral.status, change.referral.slot_id) == ("cancelled", None)
    assert (change.freed_slot_id, change.booked_slot_id) == (freed, None)
    (entry,) = change.history
    assert (entry.actor, entry.action, entry.from_status, entry.to_status, entry.at) == (
        SCHEDULER,
        "cancelled",
        status,
        "cancelled",
        T0,
    )
    assert entry.reason == "patient moved away"  # stored trimmed
    assert entry.from_slot_id == freed


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", None])
def test_cancel_requires_a_reason(reason):
    with pytest.raises(InvalidCommand) as refused:
        cancel(make_referral("booked"), reason, now=T0, actor=SCHEDULER)
    assert refused.value.code == REASON_REQUIRED


@pytest.mark.parametrize("status", ["cancelled", "completed"])
def test_cancel_refuses_a_closed_referral(status):
    with pytest.raises(TransitionError) as refused:
        cancel(make_referral(status), "duplicate", now=T0, actor=SCHEDULER)
    assert refused.value.code == INVALID_TRANSITION
    assert refused.value.reason == f"cannot cancel a {status} referral"


# --- complete ----------------------------------------------------------------


def test_complete_closes_a_booked_referral_and_keeps_its_slot():
    change = complete(make_referral("booked"), now=T0, actor=SCHEDULER)

    assert (change.referral.status, change.referral.slot_id) == ("completed", CURRENT_SLOT)
    assert (change.booked_slot_id, change.freed_slot_id) == (None, None)
    (entry,) = change.history
    assert (entry.actor, entry.action, entry.from_status, entry.to_status, entry.at) == (
        SCHEDULER,
        "completed",
        "booked",
        "completed",
        T0,
    )


@pytest.mark.parametrize("status", ["waitlisted", "cancelled", "completed"])
def test_complete_refuses_anything_but_a_booked_referral(status):
    with pytest.raises(TransitionError) as refused:
        complete(make_referral(status), now=T0, actor=SCHEDULER)
    assert refused.value.code == INVALID_TRANSITION
    assert refused.value.reason == f"cannot complete a {status} referral"


def test_transition_error_reads_as_its_reason():
    with pytest.raises(TransitionError, match="^cannot complete a cancelled referral$"):
        complete(make_referral("cancelled"), now=T0, actor=SCHEDULER)
