"""Demo data for a first `make run`: a pain-management provider with a week of free slots."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import psycopg

from services.common import envelope

from . import booking, slot_series, slot_store

DEMO_PROVIDER = "Demo Pain Clinic"
DEMO_LOCATION = "Demo Clinic, Room 1"


def demo_series(today) -> slot_series.Series:
    """A week from tomorrow: 30-minute slots, weekdays 09:00-17:00 UTC."""
    first = today + timedelta(days=1)
    return slot_series.Series(first_day=first, last_day=first + timedelta(days=6), daily_start=time(9),
                              daily_end=time(17), minutes=30)


def seed_provider(conn: psycopg.Connection, now: datetime | None = None) -> dict:
    """Create the demo provider and its week of slots; idempotent.

    Run again, it creates no second provider, and adds only the slots of the coming week
    that are not there yet (none on the same day). Slots it adds go to the waitlist like
    any other."""
    now = now or datetime.now(UTC)
    with conn.transaction():
        provider = slot_store.find_provider(conn, DEMO_PROVIDER, DEMO_LOCATION)
        if provider is None:
            try:
                with conn.transaction():  # a savepoint: a concurrent seed may win the insert
                    provider = slot_store.add_provider(conn, DEMO_PROVIDER, "pain_management", DEMO_LOCATION)
            except psycopg.errors.UniqueViolation:
                provider = slot_store.find_provider(conn, DEMO_PROVIDER, DEMO_LOCATION)
        times = slot_series.slot_times(demo_series(now.date()))
        added = booking.add_slots(conn, [(provider["provider_id"], start, end) for start, end in times],
                                  now=now, traceparent=envelope.new_traceparent(), skip_existing=True)
        free = slot_store.count_free(conn, provider["provider_id"], since=now)
    return {"provider_id": provider["provider_id"], "name": provider["name"], "location": provider["location"],
            "slots_added": len(added), "free_slots": free}
