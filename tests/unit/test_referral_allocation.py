"""Automatic booking: choosing a slot for a referral, and a referral for a slot."""

from datetime import datetime, timedelta, timezone
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.referral.domain import (
    Referral,
    Slot,
    choose_slot,
    offer_free_slot,
    pick_waitlisted_for_slot,
    slot_in_window,
    slot_order,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
URGENT_END = T0 + 2 * DAY


def make_slot(n, start, booked_by=None):
    return Slot(UUID(int=n), UUID(int=1000), start, start + HOUR, booked_by)


def waiting(n, priority="routine", created_at=T0, window_ends_at=None):
    if window_ends_at is None:
        window_ends_at = created_at + (2 * DAY if priority == "urgent" else 14 * DAY)
    return Referral(
        referral_id=UUID(int=n),
        patient_mrn=f"MRN-{n}",
        priority=priority,
        status="waitlisted",
        created_at=created_at,
        window_ends_at=window_ends_at,
        slot_id=None,
        report_ids=(UUID(int=900 + n),),
    )


# --- choose_slot -------------------------------------------------------------


@pytest.mark.parametrize(
    "slots, expected",
    [
        ([], None),
        ([make_slot(1, T0 + DAY)], 1),
        ([make_slot(1, T0 + DAY), make_slot(2, T0 + HOUR)], 2),  # earliest wins
        ([make_slot(1, URGENT_END)], 1),  # exactly at the window end
        ([make_slot(1, URGENT_END + timedelta(seconds=1))], None),  # just after
        ([make_slot(1, T0 - HOUR)], None),  # in the past
        ([make_slot(1, T0 - HOUR), make_slot(2, T0 + DAY)], 2),  # past skipped
        ([make_slot(1, T0 + HOUR, booked_by=UUID(int=77)), make_slot(2, T0 + DAY)], 2),
        ([make_slot(9, T0 + HOUR), make_slot(3, T0 + HOUR)], 3),  # tie: lower slot_id
        ([make_slot(1, T0)], 1),  # starting right now is still ahead of us
    ],
)
def test_choose_slot_takes_the_earliest_free_slot_in_the_window(slots, expected):
    chosen = choose_slot(slots, T0, URGENT_END)
    assert (chosen.slot_id if chosen else None) == (UUID(int=expected) if expected else None)


def test_choose_slot_ignores_input_order():
    slots = [make_slot(n, T0 + (n % 3) * HOUR) for n in range(1, 10)]
    assert choose_slot(slots, T0, URGENT_END) == choose_slot(reversed(slots), T0, URGENT_END)


# --- pick_waitlisted_for_slot ------------------------------------------------


@pytest.mark.parametrize(
    "waitlist, expected",
    [
        ([], None),
        ([waiting(1)], 1),
        # urgent beats an older routine
        ([waiting(1, "routine", created_at=T0 - 5 * DAY), waiting(2, "urgent", created_at=T0)], 2),
        # same priority: oldest first
        ([waiting(1, created_at=T0 - DAY), waiting(2, created_at=T0 - 3 * DAY)], 2),
        # same priority and created_at: lower referral_id
        ([waiting(7, created_at=T0 - DAY), waiting(4, created_at=T0 - DAY)], 4),
        # an urgent referral whose window does not hold the slot loses to a routine one
        ([waiting(1, "urgent", created_at=T0 - 2 * DAY + HOUR), waiting(2, "routine")], 2),
        # breached: the window closed before the slot, left to a scheduler
        ([waiting(1, created_at=T0 - 20 * DAY)], None),
    ],
)
def test_a_free_slot_goes_to_urgent_first_then_oldest(waitlist, expected):
    slot = make_slot(50, T0 + DAY)
    chosen = pick_waitlisted_for_slot(slot, waitlist, T0)
    assert (chosen.referral_id if chosen else None) == (UUID(int=expected) if expected else None)


def test_slot_exactly_at_a_window_end_goes_to_that_referral():
    slot = make_slot(50, T0 + DAY)
    chosen = pick_waitlisted_for_slot(slot, [waiting(1, window_ends_at=T0 + DAY)], T0)
    assert chosen.referral_id == UUID(int=1)


def test_a_slot_in_the_past_is_not_given_to_anyone():
    slot = make_slot(50, T0 - HOUR)
    assert pick_waitlisted_for_slot(slot, [waiting(1, created_at=T0 - DAY)], T0) is None


def test_a_booked_slot_is_not_given_to_anyone():
    slot = make_slot(50, T0 + DAY, booked_by=UUID(int=99))
    assert pick_waitlisted_for_slot(slot, [waiting(1)], T0) is None


def test_only_waitlisted_referrals_are_candidates():
    booked = Referral(
        referral_id=UUID(int=1),
        patient_mrn="MRN-1",
        priority="urgent",
        status="booked",
        created_at=T0 - DAY,
        window_ends_at=T0 + DAY,
        slot_id=UUID(int=3),
        report_ids=(UUID(int=901),),
    )
    chosen = pick_waitlisted_for_slot(make_slot(50, T0 + HOUR), [booked, waiting(2)], T0)
    assert chosen.referral_id == UUID(int=2)


# --- offer_free_slot ---------------------------------------------------------


def test_offering_a_free_slot_books_the_chosen_referral():
    slot = make_slot(50, T0 + DAY)
    change = offer_free_slot(slot, [waiting(1), waiting(2, "urgent")], T0)
    assert change.referral.referral_id == UUID(int=2)
    assert change.referral.status == "booked"
    assert change.referral.slot_id == slot.slot_id
    assert change.booked_slot_id == slot.slot_id
    assert change.freed_slot_id is None
    (entry,) = change.history
    assert (entry.actor, entry.action, entry.from_status, entry.to_status, entry.at) == (
        "system",
        "booked",
        "waitlisted",
        "booked",
        T0,
    )
    assert entry.to_slot_id == slot.slot_id and entry.reason


def test_offering_a_slot_nobody_can_take_changes_nothing():
    assert offer_free_slot(make_slot(50, T0 + 30 * DAY), [waiting(1)], T0) is None


# --- properties --------------------------------------------------------------

ZONES = st.sampled_from([timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
# Whole hours, so that ties and slots exactly at "now" or at the window end come up often.
OFFSETS = st.integers(min_value=-3 * 24, max_value=20 * 24)  # hours from T0


@st.composite
def slots(draw):
    ids = draw(st.lists(st.integers(1, 10_000), unique=True, max_size=25))
    return [
        make_slot(
            n,
            (T0 + timedelta(hours=draw(OFFSETS))).astimezone(draw(ZONES)),
            booked_by=draw(st.none() | st.just(UUID(int=77))),
        )
        for n in ids
    ]


@given(
    candidates=slots(),
    now_offset=st.integers(min_value=-24, max_value=24),
    window=st.integers(min_value=0, max_value=15 * 24),
)
def test_choose_slot_returns_the_earliest_eligible_slot(candidates, now_offset, window):
    now = T0 + timedelta(hours=now_offset)
    ends_at = now + timedelta(hours=window)
    eligible = [s for s in candidates if s.booked_by is None and now <= s.start <= ends_at]

    chosen = choose_slot(candidates, now, ends_at)

    if not eligible:
        assert chosen is None
        return
    assert chosen in eligible  # free and inside the window
    assert chosen.booked_by is None
    assert slot_in_window(chosen, now, ends_at)
    assert all(chosen.start <= s.start for s in eligible)
    assert chosen == min(eligible, key=slot_order)


@st.composite
def waitlists(draw):
    ids = draw(st.lists(st.integers(1, 10_000), unique=True, max_size=15))
    return [
        waiting(
            n,
            draw(st.sampled_from(["urgent", "routine"])),
            created_at=T0 - timedelta(hours=draw(st.integers(0, 20 * 24))),
        )
        for n in ids
    ]


@given(waitlist=waitlists(), slot_offset=st.integers(min_value=-24, max_value=15 * 24))
def test_a_free_slot_goes_to_the_first_waiting_referral_whose_window_holds_it(waitlist, slot_offset):
    slot = make_slot(50, T0 + timedelta(hours=slot_offset))
    holders = [r for r in waitlist if T0 <= slot.start <= r.window_ends_at]

    chosen = pick_waitlisted_for_slot(slot, waitlist, T0)

    if not holders:
        assert chosen is None
        return
    assert chosen in holders
    if chosen.priority == "routine":
        assert all(r.priority == "routine" for r in holders)
    same_priority = [r for r in holders if r.priority == chosen.priority]
    assert all(chosen.created_at <= r.created_at for r in same_priority)
