"""The intake worker reads what the triage and referral services really publish: their own
event builders' output passes its checks, and what cannot be that is poison."""
from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.envelope import new_event
from services.common.inbox import Delivery, PoisonEvent
from services.intake import events, worker
from services.intake.schemas import REPORT_EXAMPLE
from services.referral.events import BOOKED_EVENT, LINKED_EVENT, referral_event
from services.triage.domain import decide, default_rules_path, load_rules

REPORT_ID = "0b0c7e4e-3f5d-4a51-9f3c-2f7d2f0c9a11"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


DELIVERY = Delivery(topic="clinic.referral-events.v1", partition=0, offset=0, key=None, traceparent=None)


def triage_decision_event() -> dict:
    clinical = {k: REPORT_EXAMPLE[k] for k in ("activity", "pain", "function", "home_care")}
    decision = decide(clinical, load_rules(default_rules_path()), today=date(2026, 11, 26))
    data = {"report_id": REPORT_ID, **decision.to_dict(), "decided_at": NOW.isoformat(),
            "patient": {"mrn": "MRN-0042", "display_name": "Ana Silva"}}
    return new_event(type="clinic.triage.decided", source="/clinic/triage", subject=REPORT_ID, data=data)


def referral_booked_event() -> dict:
    start = NOW + timedelta(days=1)
    view = {"referral_id": "5a3f1a9e-8c1d-4a7e-b0a4-6f1e2d3c4b5a", "report_id": REPORT_ID,
            "report_ids": [REPORT_ID], "care_level": "urgent", "priority": "urgent", "status": "booked",
            "sequence": 1, "created_at": NOW, "window_ends_at": NOW + timedelta(days=2),
            "appointment": {"slot_id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", "start": start,
                            "end": start + timedelta(minutes=30), "provider": "Dr. Rui Costa",
                            "location": "Clinic North"}}
    return referral_event(BOOKED_EVENT, view)


def test_a_real_decision_is_read():
    event = triage_decision_event()
    data = worker.on_decision.prepare(event, None)
    assert data["care_level"] == event["data"]["care_level"] == "urgent"
    assert str(data["report_id"]) == REPORT_ID


REFERRAL_ID = "5a3f1a9e-8c1d-4a7e-b0a4-6f1e2d3c4b5a"
LINKED_ID = "7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5f"


def read(event: dict) -> tuple[list, dict]:
    """(the reports the referral event names for its referral, the snapshot read), as the
    worker prepares it for store.apply_referral_events (whose SQL the integration tests run)."""
    snapshot, traceparent = worker.on_referral_event.prepare(event, DELIVERY)
    assert traceparent  # its patient messages' events carry a trace
    return [str(r) for r in events.reports_named(snapshot)], snapshot


def test_a_real_referral_snapshot_is_read():
    event = referral_booked_event()
    assert "report_ids" not in event["data"]  # issue 15: the referral service sends no list
    named, snapshot = read(event)
    assert named == [REPORT_ID]
    assert (str(snapshot["referral_id"]), snapshot["sequence"]) == (REFERRAL_ID, 1)


def test_a_real_link_names_the_linked_report():
    start = NOW + timedelta(days=1)
    view = {"referral_id": REFERRAL_ID, "report_id": REPORT_ID, "report_ids": [REPORT_ID, LINKED_ID],
            "care_level": "urgent", "priority": "urgent", "status": "booked", "sequence": 2, "created_at": NOW,
            "window_ends_at": NOW + timedelta(days=2),
            "appointment": {"slot_id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", "start": start,
                            "end": start + timedelta(minutes=30), "provider": "Dr. Rui Costa",
                            "location": "Clinic North"}}
    named, snapshot = read(referral_event(LINKED_EVENT, view, linked_report_id=LINKED_ID))
    assert named == [REPORT_ID, LINKED_ID] and snapshot["sequence"] == 2


def test_an_event_from_before_issue_15_names_every_report_it_lists():
    """Events still in topics and DLQs at the upgrade list every report in `report_ids`."""
    event = referral_booked_event()
    event["data"].pop("report_count")
    event["data"]["report_ids"] = [REPORT_ID, LINKED_ID]
    named, _ = read(event)
    assert named == [REPORT_ID, LINKED_ID]


@pytest.mark.parametrize("data", [None, [], "x", {}])
def test_data_that_is_not_an_object_is_poison(data):
    for handler, event in ((worker.on_decision, triage_decision_event()),
                           (worker.on_referral_event, referral_booked_event())):
        event = copy.deepcopy(event)
        event["data"] = data
        with pytest.raises(PoisonEvent):
            handler.prepare(event, DELIVERY)


def test_fields_intake_does_not_read_may_be_added():
    event = referral_booked_event()
    event["data"]["something_new"] = {"nested": True}
    _named, snapshot = read(event)
    assert snapshot["status"] == "booked"


def test_poison_messages_carry_no_values():
    # They end up in logs and dead-letter headers.
    event = triage_decision_event()
    event["data"]["care_level"] = "Ana Silva MRN-0042"
    with pytest.raises(PoisonEvent) as caught:
        worker.on_decision.prepare(event, None)
    assert "MRN-0042" not in str(caught.value) and "Ana" not in str(caught.value)
