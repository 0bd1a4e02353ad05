"""Patient messages in the language of the report that gave them their address (issue 18),
against the real database, a real SMTP server and a local SMS gateway: a referral of a report
filled in Spanish is told in Spanish, by email and SMS; the language is the newest report's,
as its contact details are, and is fixed on the row when the change is told, so a report
linked later does not change a message already queued. Referral events are applied as the
worker's consumer applies them (InboxConsumer._apply), without Kafka; the sender's batches
are run by the test, as in test_patient_messages_delivery.py."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.intake_support import report_body
from tests.patient_message_support import SmsRecorder, message_rows, smtp_server

from services.common.db import connect, make_pool
from services.common.envelope import new_traceparent
from services.common.inbox import Delivery, InboxConsumer
from services.common.settings import TOPIC_REFERRAL_EVENTS
from services.intake import events, store, worker
from services.intake.messages import gsm7
from services.intake.messages import store as message_store
from services.intake.messages.sender import MessageSender
from services.referral.events import BOOKED_EVENT, CANCELLED_EVENT, LINKED_EVENT, referral_event

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def app(intake_app):
    return intake_app


@pytest.fixture(scope="module")
def consumer(intake_settings):
    pool = make_pool(intake_settings.database_url, max_size=2, name="intake-test-message-language")
    yield InboxConsumer(service="intake", pool=pool, kafka_bootstrap="127.0.0.1:1", group_id="unused",
                        handlers=worker.HANDLERS)
    pool.close()


@pytest.fixture
def sender_conn(intake_settings):
    with connect(intake_settings.database_url) as conn:
        yield conn


@pytest.fixture
def patient(client, kiosk):
    """A report filled in `language` by a patient consenting to email and SMS: (report_id, email, phone)."""
    def submit(language: str | None) -> tuple[str, str, str]:
        email = f"p-{uuid.uuid4().hex[:10]}@example.org"
        phone = f"+1555{uuid.uuid4().int % 10**7:07d}"
        body = report_body(patient__email=email, patient__phone=phone, patient__contact_consent=["email", "sms"])
        if language is not None:
            body["language"] = language
        response = client.post("/v1/reports", json=body, headers=kiosk.headers)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["report_id"], email, phone

    return submit


def snapshot(report_ids: list[str], referral_id: str, *, status: str, sequence: int,
             linked: str | None = None) -> dict:
    view = {"referral_id": referral_id, "report_id": report_ids[0], "report_ids": report_ids, "care_level": "urgent",
            "priority": "urgent", "status": status, "sequence": sequence, "created_at": START - timedelta(days=2),
            "window_ends_at": START + timedelta(days=2),
            "appointment": None if status == "cancelled" else {
                "slot_id": str(uuid.UUID(int=1)), "start": START, "end": START + timedelta(minutes=30),
                "provider": "Dra. Ana Núñez", "location": "Clínica Norte, sala 2"}}
    type_ = LINKED_EVENT if linked else {"booked": BOOKED_EVENT, "cancelled": CANCELLED_EVENT}[status]
    return referral_event(type_, view, linked_report_id=linked)


def deliver(consumer, event: dict) -> None:
    assert consumer._apply(event, Delivery(topic=TOPIC_REFERRAL_EVENTS, partition=0, offset=0,
                                           key=event["data"]["referral_id"], traceparent=new_traceparent())) == \
        "applied"


def send_all(intake_settings, sender_conn, port: int, gateway_url: str) -> None:
    settings = dataclasses.replace(
        intake_settings, smtp_host="127.0.0.1", smtp_port=port, smtp_from="citas@clinica.example.org",
        sms_gateway_url=gateway_url, sms_gateway_token="t", clinic_time_zone="Europe/Lisbon",
        clinic_contact_phone="+351 210 000 000", clinic_name="Clínica Norte")
    sender = MessageSender(settings)
    sender.take_lock(sender_conn)
    while sender.run_batch(sender_conn):
        pass


def languages_of(conn, referral_id: str) -> list[tuple]:
    return [(r["change"], r["channel"], r["status"], r["report_id"], language) for r in message_rows(conn, referral_id)
            for (language,) in [conn.execute("SELECT language FROM intake.patient_messages WHERE message_id = %s",
                                             (r["message_id"],)).fetchone()]]


def test_a_spanish_reports_referral_is_told_in_spanish_by_email_and_sms(
        consumer, patient, intake_settings, intake_conn, sender_conn):
    report_id, email_address, phone = patient("es")
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    assert languages_of(intake_conn, referral_id) == [("booked", "email", "queued", report_id, "es"),
                                                      ("booked", "sms", "queued", report_id, "es")]

    with smtp_server() as (handler, port), SmsRecorder() as gateway:
        send_all(intake_settings, sender_conn, port, gateway.url)
        [mail] = handler.to(email_address)
        [sms] = gateway.to(phone)

    message = mail.message
    assert message["Subject"] == "Su cita está reservada - Clínica Norte"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # SMTP's line ends
    assert text.startswith("Hola:\n\nSu cita está reservada.\n\n"
                           "Cuándo: miércoles 2 de diciembre de 2026, 09:30 (Europe/Lisbon, WET)\n"
                           "Con: Dra. Ana Núñez\nDónde: Clínica Norte, sala 2\n")
    html = message.get_body(("html",)).get_content()
    assert '<html lang="es">' in html and "<th scope=\"row\">Cuándo</th>" in html
    assert sms.body["text"] == ("Clinica Norte: tiene cita el mié 2 dic 2026, 09:30 WET con Dra. Ana Nuñez,"
                                " Clinica Norte, sala 2. Llame al +351 210 000 000")
    assert gsm7.is_gsm7(sms.body["text"]) and gsm7.septets(sms.body["text"]) <= 160
    rows = {r["channel"]: r for r in message_rows(intake_conn, referral_id)}  # what was told is kept
    assert (rows["email"]["status"], rows["email"]["content"]["subject"]) == ("sent", message["Subject"])
    assert (rows["sms"]["status"], rows["sms"]["content"]) == ("sent", {"text": sms.body["text"]})


@pytest.mark.parametrize("first_language", [None, "en"])
def test_an_english_or_older_report_is_told_in_english(
        consumer, patient, intake_settings, intake_conn, sender_conn, first_language):
    """A report posted without a language (as before issue 18) is English, like one in English."""
    report_id, email_address, _ = patient(first_language)
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([report_id], referral_id, status="booked", sequence=1))
    assert {r[-1] for r in languages_of(intake_conn, referral_id)} == {"en"}
    with smtp_server() as (handler, port), SmsRecorder() as gateway:
        send_all(intake_settings, sender_conn, port, gateway.url)
        [mail] = handler.to(email_address)
    assert mail.message["Subject"] == "Your appointment is booked - Clínica Norte"
    assert '<html lang="en">' in mail.message.get_body(("html",)).get_content()


def test_the_language_is_the_newest_reports_and_fixed_when_the_change_is_told(
        consumer, patient, intake_settings, intake_conn, sender_conn):
    """Booked while the referral's only report is Spanish; then a newer English report is
    linked and the clinic cancels. The booking, still queued when the link arrives, is sent in
    Spanish; the cancellation goes to the newest report's patient, in English."""
    spanish_id, spanish_email, _ = patient("es")
    english_id, english_email, _ = patient("en")
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([spanish_id], referral_id, status="booked", sequence=1))
    deliver(consumer, snapshot([spanish_id, english_id], referral_id, status="booked", sequence=2, linked=english_id))
    deliver(consumer, snapshot([spanish_id, english_id], referral_id, status="cancelled", sequence=3))
    assert languages_of(intake_conn, referral_id) == [
        ("booked", "email", "queued", spanish_id, "es"), ("booked", "sms", "queued", spanish_id, "es"),
        ("cancelled", "email", "queued", english_id, "en"), ("cancelled", "sms", "queued", english_id, "en")]

    with smtp_server() as (handler, port), SmsRecorder() as gateway:
        send_all(intake_settings, sender_conn, port, gateway.url)
        assert [m.message["Subject"] for m in handler.to(spanish_email)] == ["Su cita está reservada - Clínica Norte"]
        assert [m.message["Subject"] for m in handler.to(english_email)] == [
            "Your appointment is cancelled - Clínica Norte"]


def test_tell_change_one_event_at_a_time_carries_the_language_too(intake_settings, patient):
    """messages.store.tell_change (intake.referral_known, one event) as well as the worker's
    runs (intake.apply_referral_snapshots, above)."""
    report_id, _, _ = patient("es")
    referral_id = str(uuid.uuid4())
    data = events.parse_referral_event(snapshot([report_id], referral_id, status="booked", sequence=1))
    with psycopg.connect(intake_settings.database_url) as conn:
        store.claim_reports(conn, referral_id, events.reports_named(data))
        rows = message_store.tell_change(conn, data, None)
        conn.commit()
        assert [(r.channel, r.language) for r in rows] == [("email", "es"), ("sms", "es")]
        assert [r[-1] for r in languages_of(conn, referral_id)] == ["es", "es"]


def test_a_referral_whose_reports_intake_does_not_hold_is_told_in_english(consumer, intake_conn):
    referral_id = str(uuid.uuid4())
    deliver(consumer, snapshot([str(uuid.uuid4())], referral_id, status="booked", sequence=1))
    assert languages_of(intake_conn, referral_id) == [("booked", "phone", "not_sent", None, "en")]
