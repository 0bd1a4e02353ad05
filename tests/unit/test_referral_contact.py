"""Patient messages, the referral side (no I/O): the event read at the edge as
docs/patient-messages.md writes it, which state of a message wins, and "contact needed"."""
from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.common.envelope import new_event
from services.common.inbox import PoisonEvent
from services.referral import events
from services.referral.domain.contact import PatientMessage, callback_phone, contact_needed, supersedes

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
PHONE = "+441632960001"


def message_event(**data) -> dict:
    """As the contract's example, every field given (the envelope is checked too)."""
    base = {"message_id": str(uuid.uuid4()), "referral_id": str(uuid.uuid4()), "report_id": str(uuid.uuid4()),
            "sequence": 3, "change": "booked", "channel": "sms", "status": "failed", "detail": "gateway 400",
            "attempts": 1, "revision": 2, "at": AT.isoformat(), "callback_phone": PHONE}
    data = {**base, **data}
    return new_event(type="clinic.patient.message", source="/clinic/intake", subject=data["message_id"], data=data)


def message(status: str = "sent", at: datetime = AT, **fields) -> PatientMessage:
    base = dict(message_id=str(uuid.uuid4()), referral_id="r", report_id="p", sequence=1, change="booked",
                channel="email", status=status, detail=None, attempts=1, revision=1, at=at)
    return PatientMessage(**{**base, **fields})


# -- the event at the edge --------------------------------------------------------------------
def test_a_message_event_gives_every_field_of_the_contract():
    event = message_event()
    data = event["data"]
    assert events.parse_patient_message(event) == PatientMessage(
        message_id=data["message_id"], referral_id=data["referral_id"], report_id=data["report_id"], sequence=3,
        change="booked", channel="sms", status="failed", detail="gateway 400", attempts=1, revision=2, at=AT,
        callback_phone=PHONE)


def test_null_detail_phone_and_report_and_fields_intake_may_add_are_fine():
    event = message_event(status="sent", detail=None, callback_phone=None, report_id=None, provider_ref="abc")
    parsed = events.parse_patient_message(event)
    assert (parsed.detail, parsed.callback_phone, parsed.report_id, parsed.status) == (None, None, None, "sent")


@pytest.mark.parametrize("field, value", [
    ("message_id", "not-a-uuid"), ("referral_id", "12345"), ("referral_id", None), ("report_id", "x"),
    ("change", "completed"), ("channel", "fax"), ("status", "delivered"),
    ("sequence", -1), ("attempts", 1.5), ("revision", "2"), ("revision", True), ("attempts", 2**31),
    ("at", "2026-12-01T09:30:00"),  # no zone
    ("at", "yesterday"), ("detail", 7), ("callback_phone", ""), ("callback_phone", "9" * 65),
])
def test_a_bad_field_is_a_poison_event_naming_the_field_never_the_value(field, value):
    event = message_event(**{field: value})
    if field == "message_id":
        event["subject"] = value  # the subject matches, so the field itself is what is wrong
    with pytest.raises(PoisonEvent) as caught:
        events.parse_patient_message(event)
    reason = str(caught.value)
    assert field in reason
    if isinstance(value, str) and len(value) > 1:
        assert value not in reason


@pytest.mark.parametrize("field", ["message_id", "referral_id", "report_id", "sequence", "change", "channel",
                                   "status", "attempts", "revision", "at"])
def test_a_missing_field_is_a_poison_event(field):
    event = message_event()
    del event["data"][field]
    with pytest.raises(PoisonEvent, match=field):
        events.parse_patient_message(event)


@pytest.mark.parametrize("attribute, value, named", [
    ("type", "clinic.patient.told", "type"), ("source", "/clinic/referral", "source"),
    ("subject", str(uuid.uuid4()), "subject"), ("id", "x", "id"),
])
def test_an_envelope_other_than_intakes_is_a_poison_event(attribute, value, named):
    event = message_event()
    event[attribute] = value
    with pytest.raises(PoisonEvent, match=named):
        events.parse_patient_message(event)


def test_the_subject_must_be_the_message_not_the_referral():
    event = message_event()
    event["subject"] = event["data"]["referral_id"]
    with pytest.raises(PoisonEvent, match="subject: must equal data.message_id"):
        events.parse_patient_message(event)


def test_a_phone_number_never_reaches_the_reason():
    event = message_event(callback_phone="+44 " + "1" * 70)
    with pytest.raises(PoisonEvent) as caught:
        events.parse_patient_message(copy.deepcopy(event))
    assert "callback_phone" in str(caught.value) and "1111" not in str(caught.value)


# -- which state wins -------------------------------------------------------------------------
@pytest.mark.parametrize("incoming, stored, wins", [(1, None, True), (2, 1, True), (1, 1, False), (1, 2, False),
                                                     (0, None, True)])
def test_only_a_strictly_newer_revision_replaces_the_stored_state(incoming, stored, wins):
    assert supersedes(incoming, stored) is wins


# -- contact needed ---------------------------------------------------------------------------
@pytest.mark.parametrize("status, needed", [("queued", False), ("sent", False), ("failed", True),
                                            ("uncertain", True), ("not_sent", True)])
def test_a_message_that_may_not_have_reached_the_patient_needs_a_person(status, needed):
    assert contact_needed([message("sent"), message(status)], contacted_at=None) is needed


def test_no_messages_no_contact_needed():
    assert contact_needed([], None) is False


def test_marking_contacted_clears_what_came_before_it_only():
    failed = message("failed", at=AT)
    assert contact_needed([failed], contacted_at=AT + timedelta(minutes=5)) is False
    assert contact_needed([failed], contacted_at=AT) is False  # reached at the same instant: told
    later = message("uncertain", at=AT + timedelta(minutes=10))
    assert contact_needed([failed, later], contacted_at=AT + timedelta(minutes=5)) is True


def test_a_message_sent_later_does_not_hide_an_earlier_failure():
    assert contact_needed([message("failed", at=AT), message("sent", at=AT + timedelta(hours=1))], None) is True


def test_the_callback_phone_is_the_newest_one_given():
    old = message("not_sent", at=AT, callback_phone="+441632960001", channel="phone")
    new = message("not_sent", at=AT + timedelta(days=1), callback_phone="+441632960002", channel="phone")
    none = message("failed", at=AT + timedelta(days=2))
    assert callback_phone([new, none, old]) == "+441632960002"
    assert callback_phone([none]) is None
    assert callback_phone([replace(old, revision=1), replace(old, revision=2, callback_phone="+1555")]) == "+1555"
