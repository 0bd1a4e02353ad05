"""Intake tells the patient (docs/patient-messages.md), against the real database, a real
SMTP server (aiosmtpd, in-process) and a local SMS gateway that records requests.

Referral events are applied as the worker's consumer applies them (InboxConsumer._apply:
one transaction with the inbox row), without Kafka, so that redeliveries and late
snapshots are the test's to choose; the sender's batches are run by the test. Each test
uses its own patients' addresses and looks only at what was sent to them.
"""
from __future__ import annotations

import dataclasses
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.intake_support import report_body
from tests.patient_message_support import (SmsRecorder, message_events, message_rows, smtp_server)

from services.common.db import connect, make_pool
from services.common.envelope import new_traceparent
from services.common.inbox import Delivery, InboxConsumer
from services.common.retention import RetentionPolicy
from services.common.settings import TOPIC_REFERRAL_EVENTS
from services.intake import store, worker
from services.intake.events import PATIENT_MESSAGE_FIELDS
from services.intake.messages import gsm7
from services.intake.messages.sender import NO_GATEWAY, NO_SMTP, SENDER_GONE, MessageSender
from services.referral.events import (BOOKED_EVENT, CANCELLED_EVENT, LINKED_EVENT, RESCHEDULED_EVENT,
                                      WAITLISTED_EVENT, referral_event)

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
TOKEN = "gateway-test-token"
# What must never reach a patient: care levels, priorities, rule ids and reasons, symptoms.
CLINICAL = re.compile(r"urgent|specialist|self.?care|priority|triage|rule|reason|symptom|pain|groin|trauma"
                      r"|URG-|SPC-", re.IGNORECASE)


@pytest.fixture
def app(intake_app):
    return intake_app


@pytest.fixture(scope="module")
def consumer(intake_settings):
    pool = make_pool(intake_settings.database_url, max_size=2, name="intake-test-messages")
    yield InboxConsumer(service="intake", pool=pool, kafka_bootstrap="127.0.0.1:1", group_id="unused",
                        handlers=worker.HANDLERS)
    pool.close()


@pytest.fixture
def smtp():
    with smtp_server() as (handler, port):
        yield handler, port


@pytest.fixture
def gateway():
    with SmsRecorder() as recorder:
        yield recorder


def configured(settings, smtp_port: int | None = None, gateway_url: str | None = None, **more):
    return dataclasses.replace(
        settings, smtp_host="127.0.0.1" if smtp_port else None, smtp_port=smtp_port or 25,
        smtp_from="appointments@clinic.example.org", sms_gateway_url=gateway_url, sms_gateway_token=TOKEN,
        clinic_time_zone="Europe/Lisbon", clinic_contact_phone="+351 210 000 000", clinic_name="Clinic North",
        **more)


@pytest.fixture
def sender_conn(intake_settings):
    with connect(intake_settings.database_url) as conn:
        yield conn


def sender_on(conn, settings, **options) -> MessageSender:
    sender = MessageSender(settings, **options)
    sender.take_lock(conn)
    return sender


@pytest.fixture
def patient(client, kiosk):
    """A report of a new patient; returns (report_id, email, phone)."""
    def submit(consent=("email", "sms"), email: str | None = "", phone: str | None = "") -> tuple[str, str, str]:
        email = f"p-{uuid.uuid4().hex[:10]}@example.org" if email == "" else email
        phone = f"+1555{uuid.uuid4().int % 10**7:07d}" if phone == "" else phone
        changes = {"patient__contact_consent": list(consent)}
        if email:
            changes["patient__email"] = email
        changes["patient__phone"] = phone or ...
        response = client.post("/v1/reports", json=report_body(**changes), headers=kiosk.headers)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["report_id"], email, phone

    return submit


def snapshot(report_ids: list[str], referral_id: str, *, status: str, sequence: int, slot: int | None = 0,
             event_type: str | None = None, linked: str | None = None, old_form: bool = False) -> dict:
    """A referral event as the referral service publishes it; `slot` n: the n-th day's slot;
    `report_ids`: the referral's reports then, `linked` the one the change linked. `old_form`:
    as published before issue 15, every report in `report_ids` (still in topics and DLQs)."""
    start = START + timedelta(days=slot or 0)
    view = {"referral_id": referral_id, "report_id": report_ids[0], "report_ids": report_ids, "care_level": "urgent",
            "priority": "urgent", "status": status, "sequence": sequence, "created_at": START - timedelta(days=2),
            "window_ends_at": START + timedelta(days=2),
            "appointment": None if slot is None else {
                "slot_id": str(uuid.UUID(int=(slot or 0) + 1)), "start": start, "end": start + timedelta(minutes=30),
                "provider": "Dr. Rui Costa", "location": "Clinic North, room 2"}}
    type_ = event_type or (LINKED_EVENT if linked else {"booked": BOOKED_EVENT, "waitlisted": WAITLISTED_EVENT,
                                                         "cancelled": CANCELLED_EVENT}[status])
    event = referral_event(type_, view, linked_report_id=linked)
    if old_form:
        del event["data"]["report_count"]
        event["data"].pop("linked_report_id", None)
        event["data"]["report_ids"] = list(report_ids)
    return event


def deliver(consumer, event: dict) -> str:
    return consumer._apply(event, Delivery(topic=TOPIC_REFERRAL_EVENTS, partition=0, offset=0,
                                           key=event["data"]["referral_id"], traceparent=new_traceparent()))


def drain(sender: MessageSender, conn) -> None:
    while sender.run_batch(conn):
        pass


def test_a_booking_is_told_once_by_email_and_sms_with_when_who_where_and_no_clinical_word(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp, gateway):
    handler, port = smtp
    report_id, email_address, phone = patient()
    referral_id = str(uuid.uuid4())
    assert deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1)) == "applied"
    queued = message_rows(intake_conn, referral_id)
    assert [(r["channel"], r["status"], r["recipient"], r["change"]) for r in queued] == [
        ("email", "queued", email_address, "booked"), ("sms", "queued", phone, "booked")]

    drain(sender_on(sender_conn, configured(intake_settings, port, gateway.url)), sender_conn)

    rows = {r["channel"]: r for r in message_rows(intake_conn, referral_id)}
    assert {c: (r["status"], r["attempts"], r["revision"], r["detail"]) for c, r in rows.items()} == {
        "email": ("sent", 1, 2, None), "sms": ("sent", 1, 2, None)}
    [mail] = handler.to(email_address)
    message = mail.message
    assert mail.mail_from == "appointments@clinic.example.org"
    assert message["To"] == email_address and message["From"] == "appointments@clinic.example.org"
    assert message["Subject"] == "Your appointment is booked - Clinic North"
    assert message["Message-ID"] == f"<{rows['email']['message_id']}@clinic.example.org>"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert "Tuesday 1 December 2026, 09:30 (Europe/Lisbon, WET)" in part
        assert "Dr. Rui Costa" in part and "Clinic North, room 2" in part and "+351 210 000 000" in part
    assert not CLINICAL.search(mail.data.decode())

    [sms] = gateway.to(phone)
    assert sms.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sms.headers["Idempotency-Key"] == rows["sms"]["message_id"]
    assert set(sms.body) == {"to", "text", "reference"} and sms.body["reference"] == rows["sms"]["message_id"]
    assert gsm7.is_gsm7(sms.body["text"]) and gsm7.septets(sms.body["text"]) <= 160
    assert "Tue 1 Dec 2026 09:30 WET" in sms.body["text"] and not CLINICAL.search(sms.body["text"])
    assert rows["sms"]["content"] == {"text": sms.body["text"]}  # what was told is kept

    events = message_events(intake_conn, referral_id)
    assert [(e["data"]["channel"], e["data"]["status"], e["data"]["revision"]) for e in events] == [
        ("email", "queued", 1), ("sms", "queued", 1), ("email", "sent", 2), ("sms", "sent", 2)]
    for event in events:
        assert event["type"] == "clinic.patient.message" and event["source"] == "/clinic/intake"
        assert event["subject"] == event["data"]["message_id"]
        assert set(event["data"]) == set(PATIENT_MESSAGE_FIELDS)  # jsonb keeps no order
        assert event["data"]["callback_phone"] is None and event["data"]["report_id"] == report_id
        assert email_address not in str(event) and phone not in str(event)


def test_a_fill_from_the_waitlist_tells_booked_and_redeliveries_or_late_snapshots_tell_nothing(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    handler, port = smtp
    report_id, email_address, _phone = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    waitlisted = snapshot([report_id], referral_id, status="waitlisted", sequence=1, slot=None)
    filled = snapshot([report_id], referral_id, status="booked", sequence=3)
    assert deliver(consumer, waitlisted) == "applied"
    assert deliver(consumer, filled) == "applied"
    assert deliver(consumer, filled) == "duplicate"  # the same event again (the inbox)
    # The same snapshots published again under new event ids (a producer's replay), and an
    # older one never seen before (another slot, sequence 2) arriving late.
    for again in (snapshot([report_id], referral_id, status="booked", sequence=3),
                  snapshot([report_id], referral_id, status="waitlisted", sequence=1, slot=None),
                  snapshot([report_id], referral_id, status="booked", sequence=2, slot=5)):
        assert deliver(consumer, again) == "applied"
    sender = sender_on(sender_conn, configured(intake_settings, port))
    drain(sender, sender_conn)
    drain(sender, sender_conn)

    assert [(r["sequence"], r["change"], r["status"]) for r in message_rows(intake_conn, referral_id)] == [
        (1, "waitlisted", "sent"), (3, "booked", "sent")]
    subjects = [m.message["Subject"] for m in handler.to(email_address)]
    assert subjects == ["You are on our waiting list - Clinic North", "Your appointment is booked - Clinic North"]


def test_moved_and_cancelled_are_told_and_a_linked_report_gets_no_second_message(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    handler, port = smtp
    report_id, email_address, _phone = patient(consent=("email",))
    second_id, second_email, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=2, slot=3,
                               event_type=RESCHEDULED_EVENT))
    # A second report linked to the referral: the same booking, nothing new to tell.
    deliver(consumer, snapshot([report_id, second_id], referral_id, status="booked", sequence=3, slot=3,
                               linked=second_id))
    deliver(consumer, snapshot([report_id, second_id], referral_id, status="cancelled", sequence=4, slot=None))
    drain(sender_on(sender_conn, configured(intake_settings, port)), sender_conn)

    assert [(r["change"], r["status"], r["report_id"]) for r in message_rows(intake_conn, referral_id)] == [
        ("booked", "sent", report_id), ("moved", "sent", report_id), ("cancelled", "sent", second_id)]
    moved = handler.to(email_address)[1].message
    assert moved["Subject"] == "Your appointment has moved - Clinic North"
    assert "Friday 4 December 2026, 09:30" in moved.get_body(("plain",)).get_content()
    # The newest report's contact details: the cancellation went to the linked report's patient.
    [cancelled] = handler.to(second_email)
    assert "Friday 4 December 2026, 09:30 (Europe/Lisbon, WET) has been cancelled by the clinic" in \
        cancelled.message.get_body(("plain",)).get_content()


@pytest.mark.parametrize("cancelled_form", ["new", "old"])
def test_events_from_before_issue_15_still_find_the_newest_reports_contact_details(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp, cancelled_form):
    """A backlog at the upgrade: the booking and the link as published before (every report in
    `report_ids`), then the cancellation in either form. It goes to the linked report's patient."""
    handler, port = smtp
    report_id, email_address, _ = patient(consent=("email",))
    second_id, second_email, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1, old_form=True))
    deliver(consumer, snapshot([report_id, second_id], referral_id, status="booked", sequence=2, linked=second_id,
                               old_form=True))
    deliver(consumer, snapshot([report_id, second_id], referral_id, status="cancelled", sequence=3, slot=None,
                               old_form=cancelled_form == "old"))
    drain(sender_on(sender_conn, configured(intake_settings, port)), sender_conn)

    assert [(r["change"], r["report_id"]) for r in message_rows(intake_conn, referral_id)] == [
        ("booked", report_id), ("cancelled", second_id)]
    assert len(handler.to(email_address)) == 1 and len(handler.to(second_email)) == 1


def test_an_old_event_replayed_after_new_ones_names_reports_the_new_ones_could_not(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    """A DLQ replay after the upgrade: the old-form cancellation lists the linked report, whose
    link event intake never applied; the patient told is that newest report's."""
    handler, port = smtp
    report_id, _, _ = patient(consent=("email",))
    second_id, second_email, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    deliver(consumer, snapshot([report_id, second_id], referral_id, status="cancelled", sequence=3, slot=None,
                               old_form=True))
    drain(sender_on(sender_conn, configured(intake_settings, port)), sender_conn)
    assert [(r["change"], r["report_id"]) for r in message_rows(intake_conn, referral_id)] == [
        ("booked", report_id), ("cancelled", second_id)]
    assert len(handler.to(second_email)) == 1


def test_a_link_arriving_after_newer_snapshots_tells_nothing_again(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    handler, port = smtp
    report_id, email_address, _ = patient(consent=("email",))
    second_id, second_email, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    deliver(consumer, snapshot([report_id, second_id], referral_id, status="cancelled", sequence=3, slot=None))
    # Late: the link (sequence 2) that the cancellation came after.
    deliver(consumer, snapshot([report_id, second_id], referral_id, status="booked", sequence=2, linked=second_id))
    drain(sender_on(sender_conn, configured(intake_settings, port)), sender_conn)

    assert [(r["sequence"], r["change"], r["report_id"]) for r in message_rows(intake_conn, referral_id)] == [
        (1, "booked", report_id), (3, "cancelled", report_id)]  # the second report was not known yet
    assert handler.to(second_email) == []
    # Its kiosk shows the newest snapshot all the same.
    assert intake_conn.execute("SELECT referral ->> 'status', referral_sequence FROM intake.reports"
                               " WHERE report_id = %s", (second_id,)).fetchone() == ("cancelled", 3)


def test_a_temporary_refusal_is_retried_with_backoff_then_sent(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    handler, port = smtp
    handler.script.extend(["451 4.3.0 try again later"])
    report_id, email_address, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    sender = sender_on(sender_conn, configured(intake_settings, port), retry_base_s=0.5)

    assert sender.run_batch(sender_conn) == 1
    [row] = message_rows(intake_conn, referral_id)
    assert (row["status"], row["attempts"], row["detail"]) == ("queued", 1, "SMTP 451 at end of DATA")
    assert sender.run_batch(sender_conn) == 0  # not due yet: the backoff
    time.sleep(0.6)
    assert sender.run_batch(sender_conn) == 1
    [row] = message_rows(intake_conn, referral_id)
    assert (row["status"], row["attempts"], row["revision"]) == ("sent", 2, 3)
    assert len(handler.to(email_address)) == 1
    assert [(e["data"]["status"], e["data"]["attempts"], e["data"]["detail"])
            for e in message_events(intake_conn, referral_id)] == [
        ("queued", 0, None), ("queued", 1, "SMTP 451 at end of DATA"), ("sent", 2, None)]


def test_an_unreachable_server_is_retried_up_to_the_limit_then_failed(
        consumer, patient, intake_settings, intake_conn, sender_conn):
    from infra.postgres import free_port

    report_id, _email, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    sender = sender_on(sender_conn, configured(intake_settings, free_port(), message_max_attempts=3),
                       retry_base_s=0.05)
    deadline = time.monotonic() + 10
    while message_rows(intake_conn, referral_id)[0]["status"] == "queued" and time.monotonic() < deadline:
        sender.run_batch(sender_conn)
        time.sleep(0.05)
    [row] = message_rows(intake_conn, referral_id)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert row["detail"] == "gave up after 3 attempts: cannot reach the SMTP server: ConnectionRefusedError"


def test_a_permanent_refusal_fails_at_once_with_its_code_and_no_address(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    handler, port = smtp
    report_id, email_address, phone = patient(consent=("email",))
    handler.refused_rcpt.add(email_address)
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    sender = sender_on(sender_conn, configured(intake_settings, port))
    drain(sender, sender_conn)
    [row] = message_rows(intake_conn, referral_id)
    assert (row["status"], row["attempts"], row["detail"]) == ("failed", 1, "SMTP 550 at RCPT")
    assert handler.to(email_address) == []
    queued, failed = (e["data"] for e in message_events(intake_conn, referral_id))
    assert failed["detail"] == "SMTP 550 at RCPT"
    # A person must now call: the failed email's state carries the phone the patient gave
    # (the queued state did not).
    assert (queued["callback_phone"], failed["callback_phone"]) == (None, phone)


def test_a_connection_lost_during_data_is_uncertain_and_never_sent_again(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    handler, port = smtp
    handler.script.append("drop")
    report_id, email_address, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    sender = sender_on(sender_conn, configured(intake_settings, port))
    drain(sender, sender_conn)
    drain(sender, sender_conn)
    [row] = message_rows(intake_conn, referral_id)
    assert row["status"] == "uncertain" and row["detail"].startswith("connection lost during DATA")
    assert len(handler.to(email_address)) == 1  # the server had it: told once, not twice


def test_sms_gateway_answers_429_and_5xx_are_retried_other_4xx_fail(
        consumer, patient, intake_settings, intake_conn, sender_conn, gateway):
    first_id, _, first_phone = patient(consent=("sms",))
    second_id, _, second_phone = patient(consent=("sms",))
    first_referral, second_referral = str(uuid.uuid4()), str(uuid.uuid4())
    deliver(consumer, snapshot([first_id], first_referral, status="waitlisted", sequence=1, slot=None))
    sender = sender_on(sender_conn, configured(intake_settings, gateway_url=gateway.url), retry_base_s=0.05)
    gateway.script.extend([429, 503])
    for _ in range(3):
        sender.run_batch(sender_conn)
        time.sleep(0.12)
    [row] = message_rows(intake_conn, first_referral)
    assert (row["status"], row["attempts"]) == ("sent", 3)
    requests = gateway.to(first_phone)
    assert len(requests) == 3 and len({r.headers["Idempotency-Key"] for r in requests}) == 1

    gateway.script.append(400)
    deliver(consumer, snapshot([second_id], second_referral, status="waitlisted", sequence=1, slot=None))
    drain(sender, sender_conn)
    [row] = message_rows(intake_conn, second_referral)
    assert (row["status"], row["attempts"], row["detail"]) == ("failed", 1, "SMS gateway answered 400")
    assert len(gateway.to(second_phone)) == 1


def test_with_no_server_configured_consent_still_records_the_need_to_contact(
        consumer, patient, intake_settings, intake_conn, sender_conn):
    report_id, _email, _phone = patient()
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    drain(sender_on(sender_conn, configured(intake_settings)), sender_conn)
    assert [(r["channel"], r["status"], r["detail"]) for r in message_rows(intake_conn, referral_id)] == [
        ("email", "not_sent", NO_SMTP), ("sms", "not_sent", NO_GATEWAY)]
    assert [e["data"]["status"] for e in message_events(intake_conn, referral_id)] == [
        "queued", "queued", "not_sent", "not_sent"]


def test_without_consent_a_person_must_call_and_the_event_says_which_number(
        consumer, patient, intake_conn):
    report_id, _email, phone = patient(consent=(), email=None)
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="waitlisted", sequence=1, slot=None))
    [row] = message_rows(intake_conn, referral_id)
    assert (row["channel"], row["status"], row["recipient"]) == ("phone", "not_sent", phone)
    [event] = message_events(intake_conn, referral_id)
    assert (event["data"]["channel"], event["data"]["status"], event["data"]["callback_phone"]) == (
        "phone", "not_sent", phone)


def test_a_row_left_sending_by_a_sender_that_is_gone_becomes_uncertain_not_sent_again(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    handler, port = smtp
    report_id, email_address, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    settings = configured(intake_settings, port)
    # A sender claims the row, marks it sending, and dies (its connection closes) before the outcome.
    with connect(intake_settings.database_url) as doomed_conn:
        doomed = sender_on(doomed_conn, settings)
        from services.intake.messages import store as message_store
        with doomed_conn.transaction():
            row = message_store.claim_next(doomed_conn)
            while row.referral_id != referral_id:  # another test's leftovers are not ours to touch
                row = message_store.claim_next(doomed_conn)
            message_store.mark_sending(doomed_conn, row.message_id, doomed.sender_id, {"subject": "x"})
        alive = sender_on(sender_conn, settings)
        alive.settle_orphans(sender_conn)
        assert message_rows(intake_conn, referral_id)[0]["status"] == "sending"  # its sender still lives
    drain(alive, sender_conn)
    [row] = message_rows(intake_conn, referral_id)
    assert (row["status"], row["detail"], row["attempts"]) == ("uncertain", SENDER_GONE, 1)
    assert handler.to(email_address) == []


def test_the_identity_purge_blanks_the_messages_addresses_and_words(
        consumer, patient, intake_settings, intake_conn, sender_conn, smtp):
    _handler, port = smtp
    report_id, email_address, _ = patient(consent=("email",))
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    deliver(consumer, snapshot([report_id], referral_id, status="cancelled", sequence=2, slot=None))
    drain(sender_on(sender_conn, configured(intake_settings, port)), sender_conn)
    assert all(r["recipient"] == email_address and r["content"] for r in message_rows(intake_conn, referral_id))

    with psycopg.connect(intake_settings.database_url) as conn:
        while store.pseudonymise_batch(conn, RetentionPolicy(identity_days=0), b"k" * 32, 1000):
            pass
    rows = message_rows(intake_conn, referral_id)
    assert [(r["change"], r["status"], r["recipient"], r["content"]) for r in rows] == [
        ("booked", "sent", None, None), ("cancelled", "sent", None, None)]
