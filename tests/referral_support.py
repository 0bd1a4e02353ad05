"""Helpers and fixtures (a pytest plugin: tests/conftest.py) for the referral service's
integration, API and browser tests.

The session database is shared by every test (and other services' tests), and the
booking looks at every pain-management slot. So each test lives in its own "time bubble":
a `now` far in the future, 60 days away from any other test's, passed explicitly to the
use cases. Its slots and windows then never meet another test's.
"""
from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.app_support import role_conn
from services.common.envelope import new_event, new_traceparent
from services.common.inbox import Delivery
from services.common.settings import TOPIC_DECISIONS, TOPIC_PATIENT_MESSAGES
from services.referral import booking, slot_store, worker
from services.referral.events import parse_decision
from services.referral.domain import DEFAULT_WINDOWS

BUBBLE_ORIGIN = datetime(2300, 1, 1, 8, 0, tzinfo=UTC)
BUBBLE_SPACING = timedelta(days=60)
_bubbles = itertools.count(1)


def next_bubble() -> datetime:
    return BUBBLE_ORIGIN + next(_bubbles) * BUBBLE_SPACING


@pytest.fixture(scope="session")
def referral_settings(migrated_settings):
    return migrated_settings("referral")


@pytest.fixture
def ref_conn(referral_settings):
    with role_conn(referral_settings) as conn:
        yield conn


@pytest.fixture
def now():
    return next_bubble()


def new_provider(conn, name: str | None = None) -> dict:
    return slot_store.add_provider(conn, name or f"Pain clinic {uuid.uuid4()}", "pain_management",
                                   "Room 1")


def add_slots(conn, provider: dict, starts: list[datetime], now: datetime, minutes: int = 30) -> list[str]:
    """Slots at the given starts (added as an admin would: offered to the waitlist)."""
    return booking.add_slots(conn, [(provider["provider_id"], s, s + timedelta(minutes=minutes)) for s in starts],
                             now=now, traceparent=new_traceparent())


# Patients made by mrn() are told apart by their MRN; every decision says this birth date
# unless a test gives another (or None: a decision from before birth dates were sent).
BIRTH_DATE = "1991-04-02"


def decision_event(care_level: str, mrn: str, report_id: str | None = None, name: str = "Ana Silva",
                   within_days: int | None = None, birth_date: str | None = BIRTH_DATE,
                   language: str | None = None) -> dict:
    """`language`: the report's (issue 18); None: a decision from before, which has none."""
    report_id = report_id or str(uuid.uuid4())
    priority = {"urgent": "urgent", "specialist": "routine"}.get(care_level)
    terms = None if priority is None else {
        "priority": priority,
        "within_days": within_days or (2 if priority == "urgent" else 14)}
    data = {"report_id": report_id, "care_level": care_level, "rules_version": "test", "fired": [],
            "likely_source": "joint", "possible_causes": [], "notes": [], "advice": [],
            "referral": terms, "decided_at": datetime.now(UTC).isoformat(),
            "patient": {"mrn": mrn, "display_name": name}}
    if birth_date is not None:
        data["patient"]["birth_date"] = birth_date
    if language is not None:
        data["language"] = language
    return new_event(type="clinic.triage.decided", source="/clinic/triage", subject=report_id, data=data)


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def decide(conn, care_level: str, mrn: str, now: datetime, report_id: str | None = None,
           name: str = "Ana Silva", birth_date: str | None = BIRTH_DATE, language: str | None = None) -> str:
    """Run the worker's handler for one decision, in one transaction (as the inbox does); the report id."""
    event = decision_event(care_level, mrn, report_id, name, birth_date=birth_date, language=language)
    delivery = Delivery(topic=TOPIC_DECISIONS, partition=0, offset=0, key=event["data"]["report_id"],
                        traceparent=TRACEPARENT)
    with conn.transaction():
        worker.on_decision(conn, event, delivery, now=now)
    return event["data"]["report_id"]


def apply(conn, care_level: str, mrn: str, now: datetime, report_id: str | None = None,
          birth_date: str | None = BIRTH_DATE) -> str:
    """The use case without the transaction: for tests that hold transactions open themselves."""
    event = decision_event(care_level, mrn, report_id, birth_date=birth_date)
    booking.apply_decision(conn, parse_decision(event, DEFAULT_WINDOWS), now, new_traceparent())
    return event["data"]["report_id"]


def mrn() -> str:
    return f"MRN-{uuid.uuid4().hex[:12]}"


def referral_for_report(conn, report_id: str) -> dict | None:
    row = conn.execute(
        "SELECT r.referral_id::text, r.status, r.priority, r.slot_id::text, r.window_ends_at, r.created_at,"
        " r.version FROM referral.referrals r JOIN referral.referral_reports rr USING (referral_id)"
        " WHERE rr.report_id = %s",
        (report_id,),
    ).fetchone()
    if row is None:
        return None
    keys = ("referral_id", "status", "priority", "slot_id", "window_ends_at", "created_at", "version")
    return dict(zip(keys, row))


def outbox_events(conn, referral_id: str) -> list[tuple[str, str, dict, str]]:
    """(type, key, data, traceparent) of the referral's events, in the order written."""
    rows = conn.execute(
        "SELECT payload, key, traceparent FROM referral.outbox WHERE payload->>'subject' = %s ORDER BY id",
        (referral_id,),
    ).fetchall()
    return [(payload["type"], key, payload["data"], tp) for payload, key, tp in rows]


def fhir_changes(conn, referral_id: str) -> list[tuple[str, list[str]]]:
    """(type, the FHIR references of its `fhirchanged` attribute) of the referral's events, in order."""
    rows = conn.execute("SELECT payload FROM referral.outbox WHERE payload->>'subject' = %s ORDER BY id",
                        (referral_id,)).fetchall()
    return [(payload["type"], payload["fhirchanged"].split(" ")) for (payload,) in rows]


def fhir_as_the_snapshot_says(event: dict) -> list[str]:
    """An event's FHIR references (issue 17), checked against what its type and snapshot say:
    the ServiceRequest always; a booking names its Appointment and the Slot its snapshot holds
    (a move, also the Slot it left); a cancellation its Appointment and Slot only when it freed
    one; a completion its Appointment; a link or a raise nothing else but, when the linked
    report's language changed the patient's (which the snapshot does not carry), the Patient."""
    references = event["fhirchanged"].split(" ")
    data, kind = event["data"], event["type"]
    request, appointment = f"ServiceRequest/{data['referral_id']}", f"Appointment/{data['referral_id']}"
    held = data["appointment"] and f"Slot/{data['appointment']['slot_id']}"
    if kind == "referral.rescheduled":
        assert references[:3] == [request, appointment, held] and len(references) == 4, references
        assert references[3].startswith("Slot/") and references[3] != held, references
    elif kind in ("referral.linked", "referral.priority_raised"):
        assert references in ([request], [request, f"Patient/{data['referral_id']}"]), references
    elif kind == "referral.cancelled":
        assert references == [request] or (len(references) == 3 and references[:2] == [request, appointment]
                                           and references[2].startswith("Slot/")), references
    else:
        assert references == {"referral.booked": [request, appointment, held],
                              "referral.completed": [request, appointment]}.get(kind, [request]), references
    return references


# -- patient messages (docs/patient-messages.md), as intake publishes them -------------------
def patient_message_event(referral_id: str, *, status: str = "sent", channel: str = "email",
                          change: str = "booked", revision: int = 1, at: datetime | None = None,
                          message_id: str | None = None, report_id: str | None = None, sequence: int = 1,
                          attempts: int | None = None, detail: str | None = None,
                          callback_phone: str | None = None) -> dict:
    """One `clinic.patient.message` event, built from the contract's text (not intake's code)."""
    message_id = message_id or str(uuid.uuid4())
    data = {"message_id": message_id, "referral_id": referral_id, "report_id": report_id or str(uuid.uuid4()),
            "sequence": sequence, "change": change, "channel": channel, "status": status,
            "detail": detail if detail is not None or status in ("queued", "sent") else f"{status} (test)",
            "attempts": (1 if status != "queued" else 0) if attempts is None else attempts,
            "revision": revision, "at": (at or datetime.now(UTC)).isoformat(), "callback_phone": callback_phone}
    return new_event(type="clinic.patient.message", source="/clinic/intake", subject=message_id, data=data)


def tell(conn, event: dict) -> None:
    """Run the worker's patient-message handler for one event, in one transaction (as the inbox does)."""
    delivery = Delivery(topic=TOPIC_PATIENT_MESSAGES, partition=0, offset=0, key=event["data"]["referral_id"],
                        traceparent=TRACEPARENT)
    with conn.transaction():
        worker.on_patient_message(conn, event, delivery)


def staff_token(settings, role: str) -> str:
    from services.admin.credentials import staff_add

    return staff_add(settings, f"{role}-{uuid.uuid4().hex[:8]}", role)


def plan_nodes(plan: dict):
    """Every node of an EXPLAIN (FORMAT JSON) plan, subplans included."""
    stack = [plan["Plan"]]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))
