"""Values, priorities and windows of the referral booking policy."""

from datetime import datetime, timedelta, timezone
from uuid import UUID

import pytest

from services.referral.domain import (
    DEFAULT_WINDOWS,
    Referral,
    Slot,
    Windows,
    is_breached,
    priority_for,
    slot_in_window,
    window_end,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def make_slot(n=1, start=T0, length=HOUR, booked_by=None):
    return Slot(UUID(int=n), UUID(int=1000), start, start + length, booked_by)


def make_referral(status="waitlisted", slot_id=None, created_at=T0, window_ends_at=T0 + 14 * DAY, **kw):
    fields = dict(
        referral_id=UUID(int=500),
        patient_mrn="MRN-1",
        priority="routine",
        status=status,
        created_at=created_at,
        window_ends_at=window_ends_at,
        slot_id=slot_id,
        report_ids=(UUID(int=900),),
    )
    fields.update(kw)
    return Referral(**fields)


@pytest.mark.parametrize(
    "care_level, priority",
    [("urgent", "urgent"), ("specialist", "routine"), ("self_care", None)],
)
def test_priority_follows_care_level(care_level, priority):
    assert priority_for(care_level) == priority


def test_unknown_care_level_is_refused():
    with pytest.raises(ValueError, match="unknown care level"):
        priority_for("emergency")


@pytest.mark.parametrize(
    "priority, windows, expected",
    [
        ("urgent", DEFAULT_WINDOWS, T0 + 2 * DAY),
        ("routine", DEFAULT_WINDOWS, T0 + 14 * DAY),
        ("urgent", Windows.from_days(urgent_days=1, routine_days=7), T0 + DAY),
        ("routine", Windows.from_days(urgent_days=1, routine_days=7), T0 + 7 * DAY),
    ],
)
def test_window_is_counted_from_when_the_referral_was_made(priority, windows, expected):
    assert window_end(priority, T0, windows) == expected


def test_window_end_refuses_unknown_priority_and_naive_time():
    with pytest.raises(ValueError):
        window_end("soon", T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        window_end("urgent", T0.replace(tzinfo=None))


@pytest.mark.parametrize("urgent_days, routine_days", [(0, 14), (2, -1)])
def test_windows_must_be_positive(urgent_days, routine_days):
    with pytest.raises(ValueError, match="positive"):
        Windows.from_days(urgent_days, routine_days)


END = T0 + 2 * DAY


@pytest.mark.parametrize(
    "start, inside",
    [
        (T0, True),  # starts right now
        (T0 + DAY, True),
        (END, True),  # exactly at the window end
        (END + timedelta(seconds=1), False),
        (T0 - timedelta(minutes=1), False),  # already started: never booked automatically
        (T0 - DAY, False),
    ],
)
def test_slot_is_in_window_when_its_start_is(start, inside):
    assert slot_in_window(make_slot(start=start), T0, END) is inside


def test_only_the_start_of_a_slot_counts():
    long_slot = make_slot(start=END - HOUR, length=5 * HOUR)  # ends after the window
    assert slot_in_window(long_slot, T0, END)


def test_window_compares_instants_across_time_zones():
    plus_two = timezone(timedelta(hours=2))
    # 11:00+02:00 is 09:00Z, exactly "now".
    assert slot_in_window(make_slot(start=T0.astimezone(plus_two)), T0, END)


@pytest.mark.parametrize(
    "status, slot_id, now, breached",
    [
        ("waitlisted", None, T0 + 14 * DAY, False),  # at the end: not yet
        ("waitlisted", None, T0 + 14 * DAY + timedelta(seconds=1), True),
        ("waitlisted", None, T0 + DAY, False),
        ("booked", UUID(int=1), T0 + 30 * DAY, False),
        ("cancelled", None, T0 + 30 * DAY, False),
        ("completed", UUID(int=1), T0 + 30 * DAY, False),
    ],
)
def test_breached_means_still_waiting_after_the_window(status, slot_id, now, breached):
    assert is_breached(make_referral(status=status, slot_id=slot_id), now) is breached


def test_slot_must_start_before_it_ends_and_be_zoned():
    with pytest.raises(ValueError, match="start before"):
        make_slot(length=timedelta(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        make_slot(start=T0.replace(tzinfo=None))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(priority="soon"), "unknown priority"),
        (dict(status="lost"), "unknown status"),
        (dict(created_at=T0.replace(tzinfo=None)), "timezone-aware"),
        (dict(window_ends_at=T0 - DAY), "before created_at"),
        (dict(report_ids=()), "non-empty tuple"),
        (dict(report_ids=[UUID(int=900)]), "non-empty tuple"),
        (dict(status="booked", slot_id=None), "must have a slot"),
        (dict(status="completed", slot_id=None), "must have a slot"),
        (dict(status="waitlisted", slot_id=UUID(int=1)), "must not have a slot"),
        (dict(status="cancelled", slot_id=UUID(int=1)), "must not have a slot"),
    ],
)
def test_referral_refuses_impossible_states(changes, message):
    with pytest.raises(ValueError, match=message):
        make_referral(**changes)
