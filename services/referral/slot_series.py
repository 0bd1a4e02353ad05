"""Series of equal slots ("a week of 30-minute slots, weekdays 09:00-17:00") as times.

Pure: the bulk endpoint and the demo seed both use it. Days and daily hours are read in
the given time zone (clinics keep local hours across daylight saving changes); the
slots come out as aware UTC datetimes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = (1, 2, 3, 4, 5)  # ISO weekday numbers: Monday is 1


@dataclass(frozen=True)
class Series:
    first_day: date
    last_day: date           # inclusive
    daily_start: time
    daily_end: time          # the last slot ends at or before this
    minutes: int
    weekdays: tuple[int, ...] = WEEKDAYS
    time_zone: str = "UTC"


def slot_times(series: Series) -> list[tuple[datetime, datetime]]:
    """(start, end) of every slot of the series, earliest first."""
    zone = ZoneInfo(series.time_zone)
    length = timedelta(minutes=series.minutes)
    found = []
    day = series.first_day
    while day <= series.last_day:
        if day.isoweekday() in series.weekdays:
            start = datetime.combine(day, series.daily_start)
            day_end = datetime.combine(day, series.daily_end)
            while start + length <= day_end:
                # Local wall-clock times; converted one by one so a DST change moves none of them.
                found.append((start.replace(tzinfo=zone).astimezone(UTC),
                              (start + length).replace(tzinfo=zone).astimezone(UTC)))
                start += length
        day += timedelta(days=1)
    return found


def count(series: Series) -> int:
    """How many slots the series makes, without making them (to refuse huge requests first)."""
    per_day = max(0, (datetime.combine(date.min, series.daily_end)
                      - datetime.combine(date.min, series.daily_start)) // timedelta(minutes=series.minutes))
    days = (series.last_day - series.first_day).days + 1
    matching = sum(1 for i in range(max(days, 0))
                   if (series.first_day + timedelta(days=i)).isoweekday() in series.weekdays)
    return per_day * matching
