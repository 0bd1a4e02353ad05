"""The demo provider of a first `make run`: a week of free weekday slots, seeded idempotently."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.referral_support import decide, mrn, referral_for_report

from services.referral import slot_store
from services.referral.demo import DEMO_PROVIDER, seed_provider

pytestmark = pytest.mark.integration


def test_the_demo_provider_gets_a_week_of_weekday_slots_once(ref_conn, now):
    first = seed_provider(ref_conn, now=now)
    assert first["name"] == DEMO_PROVIDER
    assert first["slots_added"] == 5 * 16  # any 7 days from tomorrow hold 5 weekdays of 09:00-17:00
    slots, _ = slot_store.slots_page(ref_conn, provider_id=first["provider_id"], free=None, start_from=now,
                                     start_to=now + timedelta(days=8), after=None, limit=200)
    assert len(slots) == 80
    starts = [s["start"] for s in slots]
    tomorrow = (now + timedelta(days=1)).date()
    first_weekday = next(tomorrow + timedelta(days=i) for i in range(3) if (tomorrow + timedelta(days=i)).weekday() < 5)
    assert min(starts).date() == first_weekday
    assert all(s.weekday() < 5 and 9 <= s.hour < 17 and s.minute in (0, 30) for s in starts)
    assert all(s["end"] - s["start"] == timedelta(minutes=30) for s in slots)

    again = seed_provider(ref_conn, now=now)
    assert (again["provider_id"], again["slots_added"], again["free_slots"]) == (first["provider_id"], 0, 80)


def test_demo_slots_go_to_waiting_referrals_like_any_other(ref_conn, now):
    waiting = decide(ref_conn, "specialist", mrn(), now)
    seed_provider(ref_conn, now=now)
    assert referral_for_report(ref_conn, waiting)["status"] == "booked"
