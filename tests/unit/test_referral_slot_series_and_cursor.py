"""Slot series for the bulk endpoint and the demo, and the queue's opaque cursors (no I/O)."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.referral import cursor
from services.referral.slot_series import Series, count, slot_times

MONDAY = date(2026, 11, 30)


def test_a_week_of_thirty_minute_weekday_slots():
    series = Series(first_day=MONDAY, last_day=MONDAY + timedelta(days=6), daily_start=time(9),
                    daily_end=time(17), minutes=30)
    times = slot_times(series)
    assert len(times) == count(series) == 5 * 16
    assert times[0] == (datetime(2026, 11, 30, 9, tzinfo=UTC), datetime(2026, 11, 30, 9, 30, tzinfo=UTC))
    assert times[-1] == (datetime(2026, 12, 4, 16, 30, tzinfo=UTC), datetime(2026, 12, 4, 17, tzinfo=UTC))
    assert all(a[1] <= b[0] for a, b in zip(times, times[1:]))  # in order, never overlapping


def test_the_last_slot_ends_by_the_daily_end():
    series = Series(first_day=MONDAY, last_day=MONDAY, daily_start=time(9), daily_end=time(10, 10), minutes=20)
    assert [s.time() for s, _ in slot_times(series)] == [time(9), time(9, 20), time(9, 40)]
    assert count(series) == 3


def test_local_hours_stay_local_across_a_daylight_saving_change():
    # Lisbon moves from UTC+1 to UTC+0 on 25 October 2026.
    series = Series(first_day=date(2026, 10, 23), last_day=date(2026, 10, 26), daily_start=time(9),
                    daily_end=time(9, 30), minutes=30, weekdays=(1, 2, 3, 4, 5, 6, 7), time_zone="Europe/Lisbon")
    assert [start.hour for start, _ in slot_times(series)] == [8, 8, 9, 9]


def test_weekdays_pick_the_days():
    series = Series(first_day=MONDAY, last_day=MONDAY + timedelta(days=13), daily_start=time(9),
                    daily_end=time(9, 30), minutes=30, weekdays=(6,))
    assert [s.date() for s, _ in slot_times(series)] == [date(2026, 12, 5), date(2026, 12, 12)]


def test_a_cursor_round_trips_and_is_opaque():
    key = (1, datetime(2026, 11, 26, 9, tzinfo=UTC), str(uuid.uuid4()))
    token = cursor.encode("referrals", *key)
    assert "referrals" not in token and "=" not in token
    assert cursor.decode(token, "referrals", (int, datetime, uuid.UUID)) == key


@pytest.mark.parametrize("token", ["", "!!", "bm90IGpzb24", cursor.encode("slots", "x", "y"),
                                   cursor.encode("referrals", "one", "2026-11-26T09:00:00+00:00", str(uuid.uuid4())),
                                   cursor.encode("referrals", 1, "2026-11-26T09:00:00", str(uuid.uuid4())),
                                   cursor.encode("referrals", 1, "2026-11-26T09:00:00+00:00", "not-a-uuid")])
def test_a_foreign_or_damaged_cursor_is_refused(token):
    with pytest.raises(cursor.InvalidCursor):
        cursor.decode(token, "referrals", (int, datetime, uuid.UUID))
