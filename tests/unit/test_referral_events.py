"""Referral events: decisions read at the edge, event types and snapshot data (no I/O)."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.common.envelope import new_event
from services.common.inbox import PoisonEvent
from services.referral import domain, events
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


def _change(status: str, *actions: str, report_ids: tuple[str, ...] = ("a",)) -> ReferralChange:
    referral = Referral(referral_id="r1", patient_mrn="M", priority="urgent", status=status, created_at=NOW,
                        window_ends_at=NOW + timedelta(days=2), slot_id="s1" if status in ("booked", "completed")
                        else None, report_ids=report_ids)
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


@pytest.mark.parametrize(("actions", "expected"), [
    (["report_linked"], "c"),
    (["report_linked", "raised_to_urgent"], "c"),  # a raise the link caused
    (["created"], None), (["moved"], None), (["raised_to_urgent"], None), (["cancelled"], None),
])
def test_only_a_change_that_linked_a_report_names_it(actions, expected):
    assert events.linked_report_id(_change("booked", *actions, report_ids=("a", "b", "c"))) == expected


def view(report_ids: list[str], sequence: int = 4) -> dict:
    """A referral view as store.referral_view gives it (with what events must leave out)."""
    return {"referral_id": "r1", "report_id": report_ids[0], "report_ids": report_ids, "care_level": "urgent",
            "priority": "urgent", "status": "booked", "sequence": sequence, "created_at": NOW,
            "window_ends_at": NOW + timedelta(days=2), "updated_at": NOW, "breached": False,
            "patient": {"mrn": "MRN-0042", "display_name": "Ana Silva"}, "priority_rank": 0,
            "possible_duplicate_of": None, "contact": {"needed": False},
            "appointment": {"slot_id": "s1", "start": NOW + timedelta(hours=3),
                            "end": NOW + timedelta(hours=3, minutes=30), "provider": "P", "location": "L"}}


SNAPSHOT = {"referral_id": "r1", "report_id": "a", "care_level": "urgent", "priority": "urgent", "status": "booked",
            "sequence": 4, "created_at": "2026-11-26T09:00:00+00:00", "window_ends_at": "2026-11-28T09:00:00+00:00",
            "appointment": {"slot_id": "s1", "start": "2026-11-26T12:00:00+00:00",
                            "end": "2026-11-26T12:30:00+00:00", "provider": "P", "location": "L"}}


def test_the_event_data_is_a_snapshot_without_patient_identity_nor_the_list_of_reports():
    event = events.referral_event("referral.booked", view(["a", "b"]))
    assert (event["type"], event["subject"], event["source"]) == ("referral.booked", "r1", "/clinic/referral")
    assert event["data"] == {**SNAPSHOT, "report_count": 2}


def test_a_link_names_the_report_it_linked():
    event = events.referral_event("referral.linked", view(["a", "b"]), linked_report_id="b")
    assert event["data"] == {**SNAPSHOT, "report_count": 2, "linked_report_id": "b"}


def _size(links: int) -> int:
    report_ids = [str(uuid.UUID(int=n + 1)) for n in range(links + 1)]
    linked = events.referral_event(events.LINKED_EVENT, view(report_ids, sequence=links + 1),
                                   linked_report_id=report_ids[-1])
    return len(json.dumps(linked).encode())


def test_a_linked_events_size_does_not_grow_with_the_links(capsys):
    """Issue 15: before, referral.linked listed every report (851 bytes at 1 link, 24,813 at
    600). Now only the digits of sequence and report_count grow."""
    one, many = _size(1), _size(600)
    with capsys.disabled():
        print(f"\nreferral.linked event: {one} bytes at 1 link, {many} bytes at 600 links")
    assert many - one <= 4 and many < 1024


# -- the FHIR resources a change alters (issue 17) ------------------------------------------
def _slot(slot_id: str, hours: int, booked_by: str | None = None) -> domain.Slot:
    return domain.Slot(slot_id=slot_id, provider_id="p1", start=NOW + timedelta(hours=hours),
                       end=NOW + timedelta(hours=hours, minutes=30), booked_by=booked_by)


def _created(*free: domain.Slot, level: str = "specialist") -> ReferralChange:
    plan = domain.on_new_decision(None, level, "a", NOW)
    return domain.create_referral(plan, referral_id="r1", patient_mrn="M", free_slots=free)


def _linked(referral: Referral, level: str) -> ReferralChange:
    return domain.on_new_decision(referral, level, "b", NOW).change


BOOKED = _created(_slot("s1", 3)).referral
WAITLISTED = _created().referral
ROUTINE_BOOKED = _created(_slot("s1", 200)).referral


# Each change the policy makes, from its own functions, and the references its event names.
@pytest.mark.parametrize(("change", "kind", "expected"), [
    (_created(_slot("s1", 3)), "referral.booked", ["ServiceRequest/r1", "Appointment/r1", "Slot/s1"]),
    (_created(), "referral.waitlisted", ["ServiceRequest/r1"]),
    (domain.reschedule(WAITLISTED, _slot("s2", 5), NOW, actor="x"), "referral.booked",
     ["ServiceRequest/r1", "Appointment/r1", "Slot/s2"]),
    (domain.offer_free_slot(_slot("s2", 5), [WAITLISTED], NOW), "referral.booked",
     ["ServiceRequest/r1", "Appointment/r1", "Slot/s2"]),
    (domain.reschedule(BOOKED, _slot("s2", 5), NOW, actor="x"), "referral.rescheduled",
     ["ServiceRequest/r1", "Appointment/r1", "Slot/s2", "Slot/s1"]),
    (domain.place_within_window(_linked(ROUTINE_BOOKED, "urgent").referral, _slot("s1", 200, "r1"),
                                [_slot("s2", 5)], NOW), "referral.rescheduled",
     ["ServiceRequest/r1", "Appointment/r1", "Slot/s2", "Slot/s1"]),
    (domain.cancel(BOOKED, "moved away", now=NOW, actor="x"), "referral.cancelled",
     ["ServiceRequest/r1", "Appointment/r1", "Slot/s1"]),
    (domain.cancel(WAITLISTED, "moved away", now=NOW, actor="x"), "referral.cancelled", ["ServiceRequest/r1"]),
    (domain.complete(BOOKED, now=NOW, actor="x"), "referral.completed", ["ServiceRequest/r1", "Appointment/r1"]),
    (_linked(BOOKED, "specialist"), "referral.linked", ["ServiceRequest/r1"]),
    (_linked(ROUTINE_BOOKED, "urgent"), "referral.priority_raised", ["ServiceRequest/r1"]),
], ids=["created booked", "created waitlisted", "booked by hand", "booked from the waitlist", "moved by hand",
        "moved into the raised window", "cancelled booked", "cancelled waitlisted", "completed", "linked",
        "raised"])
def test_each_change_names_the_fhir_resources_it_alters(change, kind, expected):
    event = events.change_event(change, view(list(change.referral.report_ids)))
    assert event["type"] == kind
    assert event["fhirchanged"].split(" ") == expected
    assert event["subject"] == "r1"  # unchanged: consumers check it against data.referral_id


def test_an_event_built_without_a_change_names_its_service_request():
    assert events.referral_event("referral.booked", view(["a"]))["fhirchanged"] == "ServiceRequest/r1"


def test_the_fhir_attribute_is_a_cloudevents_extension_of_bounded_size():
    """CloudEvents: an extension attribute's name is lowercase letters and digits (at most 20),
    its value a string; at most four references of UUIDs, whatever the referral's history."""
    rid, old, new = (str(uuid.UUID(int=n)) for n in (1, 2, 3))
    referral = Referral(referral_id=rid, patient_mrn="M", priority="urgent", status="booked", created_at=NOW,
                        window_ends_at=NOW + timedelta(days=2), slot_id=old, report_ids=("a",))
    event = events.change_event(domain.reschedule(referral, _slot(new, 5), NOW, actor="x"), view(["a"]))
    name = events.FHIR_CHANGED
    assert name.isascii() and name.isalnum() and name.islower() and len(name) <= 20
    assert isinstance(event[name], str) and len(event[name]) <= 4 * len("ServiceRequest/") + 4 * 36 + 3
    assert event[name] == f"ServiceRequest/{rid} Appointment/{rid} Slot/{new} Slot/{old}"
