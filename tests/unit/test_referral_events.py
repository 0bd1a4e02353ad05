"""Referral events: decisions read at the edge, event types and snapshot data (no I/O)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.common.envelope import new_event
from services.common.inbox import PoisonEvent
from services.referral import events
from services.referral.domain import (
    DEFAULT_WINDOWS,
    HistoryEntry,
    Referral,
    ReferralChange,
    Windows,
)

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def decision(**data) -> dict:
    base = {"report_id": str(uuid.uuid4()), "care_level": "urgent", "decided_at": NOW.isoformat(),
            "rules_version": "2026-11-1", "fired": [], "advice": ["rest"],
            "referral": {"priority": "urgent", "within_days": 2},
            "patient": {"mrn": "MRN-0042", "display_name": "Ana Silva"}}
    data = {**base, **data}
    # as triage publishes it (the envelope is checked too)
    return new_event(type="clinic.triage.decided", source="/clinic/triage", subject=data["report_id"], data=data)


def test_a_decision_gives_what_booking_needs():
    event = decision()
    parsed = events.parse_decision(event, DEFAULT_WINDOWS)
    assert parsed == events.Decision(report_id=event["data"]["report_id"], care_level="urgent",
                                     patient_mrn="MRN-0042", patient_name="Ana Silva", windows=DEFAULT_WINDOWS)


def test_the_window_follows_the_rule_file_the_decision_names():
    parsed = events.parse_decision(decision(care_level="specialist",
                                            referral={"priority": "routine", "within_days": 10}), DEFAULT_WINDOWS)
    assert parsed.windows == Windows(urgent=timedelta(days=2), routine=timedelta(days=10))


def test_self_care_needs_no_referral_terms():
    parsed = events.parse_decision(decision(care_level="self_care", referral=None), DEFAULT_WINDOWS)
    assert parsed.care_level == "self_care" and parsed.windows == DEFAULT_WINDOWS


@pytest.mark.parametrize("change", [
    {"report_id": "nope"}, {"care_level": "emergency"}, {"patient": {"mrn": "MRN-1"}}, {"patient": None},
    {"decided_at": "2026-11-26T09:00:00"}, {"referral": {"priority": "urgent", "within_days": 0}},
])
def test_a_decision_that_cannot_be_booked_is_poison(change):
    with pytest.raises(PoisonEvent, match="decision event data invalid"):
        events.parse_decision(decision(**change), DEFAULT_WINDOWS)


def test_missing_data_is_poison():
    with pytest.raises(PoisonEvent):
        events.parse_decision({"id": "x", "type": "t"}, DEFAULT_WINDOWS)


def _change(status: str, *actions: str) -> ReferralChange:
    referral = Referral(referral_id="r1", patient_mrn="M", priority="urgent", status=status, created_at=NOW,
                        window_ends_at=NOW + timedelta(days=2), slot_id="s1" if status in ("booked", "completed")
                        else None, report_ids=("a",))
    history = tuple(HistoryEntry(referral_id="r1", actor="system", action=a, from_status=None, to_status=status,
                                 at=NOW, reason="why") for a in actions)
    return ReferralChange(referral=referral, history=history)


@pytest.mark.parametrize(("status", "actions", "expected"), [
    ("booked", ["created"], "referral.booked"),
    ("waitlisted", ["created"], "referral.waitlisted"),
    ("booked", ["booked"], "referral.booked"),
    ("booked", ["moved"], "referral.rescheduled"),
    ("cancelled", ["cancelled"], "referral.cancelled"),
    ("completed", ["completed"], "referral.completed"),
    ("waitlisted", ["report_linked"], "referral.linked"),
    ("booked", ["report_linked", "raised_to_urgent"], "referral.priority_raised"),
])
def test_each_change_has_one_event_type(status, actions, expected):
    assert events.event_type(_change(status, *actions)) == expected


def test_the_event_data_is_a_full_snapshot_without_patient_identity():
    view = {"referral_id": "r1", "report_id": "a", "report_ids": ["a", "b"], "care_level": "urgent",
            "priority": "urgent", "status": "booked", "sequence": 4, "created_at": NOW,
            "window_ends_at": NOW + timedelta(days=2), "updated_at": NOW, "breached": False,
            "patient": {"mrn": "MRN-0042", "display_name": "Ana Silva"}, "priority_rank": 0,
            "appointment": {"slot_id": "s1", "start": NOW + timedelta(hours=3),
                            "end": NOW + timedelta(hours=3, minutes=30), "provider": "P", "location": "L"}}
    event = events.referral_event("referral.booked", view)
    assert (event["type"], event["subject"], event["source"]) == ("referral.booked", "r1", "/clinic/referral")
    assert event["data"] == {
        "referral_id": "r1", "report_id": "a", "report_ids": ["a", "b"], "care_level": "urgent",
        "priority": "urgent", "status": "booked", "sequence": 4, "created_at": "2026-11-26T09:00:00+00:00",
        "window_ends_at": "2026-11-28T09:00:00+00:00",
        "appointment": {"slot_id": "s1", "start": "2026-11-26T12:00:00+00:00", "end": "2026-11-26T12:30:00+00:00",
                        "provider": "P", "location": "L"}}
