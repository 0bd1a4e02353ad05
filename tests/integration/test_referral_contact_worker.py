"""Patient messages over real Kafka: `clinic.patient.message` events, built from
docs/patient-messages.md and published on clinic.patient-messages.v1 as intake does (key =
referral id, traceparent header), reach the referral worker (its real handlers, both topics)
and show in the queue API; a poison message is dead-lettered naming the field, never a value."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.app_support import WorkerThread, flask_app
from tests.integration.test_referral_worker import messages_keyed, wait_for
from tests.kafka_support import admin_security
from tests.referral_support import decision_event, mrn, patient_message_event, referral_for_report, staff_token

from services.common import envelope
from services.common.kafka_io import make_producer
from services.common.settings import TOPIC_DECISIONS, TOPIC_PATIENT_MESSAGES, dlq_topic
from services.referral import worker
from services.referral.app import create_app

pytestmark = pytest.mark.integration

PHONE = "+441632960777"


@pytest.fixture
def running_worker(referral_settings):
    with WorkerThread(referral_settings, migrations_package="services.referral", handlers=worker.handlers(),
                      group_id=f"clinic-referral-contact-test-{uuid.uuid4().hex[:8]}"):
        yield


@pytest.fixture(scope="module")
def api(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app.test_client(), {"Authorization": f"Bearer {staff_token(referral_settings, 'scheduler')}"}


def publish(settings, topic: str, key: str, events: list[dict]) -> None:
    """In this order, on one partition (one key), each with its own trace, as intake's relay does."""
    producer = make_producer(settings.kafka_bootstrap, "referral-contact-test", admin_security(settings.kafka_bootstrap))
    try:
        for event in events:
            producer.send(topic, key=key.encode(), value=envelope.encode(event),
                          headers=[("traceparent", envelope.new_traceparent().encode())]).get(timeout=30)
    finally:
        producer.close(timeout=5)


def test_messages_from_kafka_show_in_the_queue_with_the_newest_state_of_each(referral_settings, ref_conn, api,
                                                                             running_worker):
    client, scheduler = api
    decision = decision_event("specialist", mrn())
    report_id = decision["data"]["report_id"]
    publish(referral_settings, TOPIC_DECISIONS, report_id, [decision])
    referral_id = wait_for(lambda: referral_for_report(ref_conn, report_id), "the referral")["referral_id"]

    at = datetime.now(UTC).replace(microsecond=0)
    email_id, sms_id = str(uuid.uuid4()), str(uuid.uuid4())

    def state(message_id, channel, status, revision, minutes, **extra):
        return patient_message_event(referral_id, report_id=report_id, message_id=message_id, channel=channel,
                                     status=status, revision=revision, at=at + timedelta(minutes=minutes), **extra)

    sms_failed = state(sms_id, "sms", "failed", 2, 2, detail="gateway refused (400)", callback_phone=PHONE)
    publish(referral_settings, TOPIC_PATIENT_MESSAGES, referral_id, [
        state(email_id, "email", "queued", 1, 0),
        sms_failed,
        state(sms_id, "sms", "queued", 1, 0),      # late: older than what came before it
        state(email_id, "email", "sent", 2, 1),
        {**sms_failed, "id": str(uuid.uuid4())},   # the same state again
    ])

    def contact():
        found = client.get(f"/v1/referrals?report_id={report_id}", headers=scheduler).get_json()["items"]
        shown = found[0]["contact"] if found else None
        return shown if shown and {m["status"] for m in shown["messages"]} == {"sent", "failed"} else None

    shown = wait_for(contact, "both messages in their newest state")
    assert shown["needed"] is True and shown["callback_phone"] == PHONE
    assert [(m["message_id"], m["channel"], m["status"]) for m in shown["messages"]] == [
        (email_id, "email", "sent"), (sms_id, "sms", "failed")]
    flagged = client.get("/v1/referrals?contact_needed=true&limit=200", headers=scheduler).get_json()["items"]
    assert referral_id in {item["referral_id"] for item in flagged}


def test_a_message_that_breaks_the_contract_is_dead_lettered_naming_the_field(referral_settings, ref_conn,
                                                                              running_worker):
    referral_id = str(uuid.uuid4())
    event = patient_message_event(referral_id, status="bounced", callback_phone=PHONE)
    publish(referral_settings, TOPIC_PATIENT_MESSAGES, referral_id, [event])

    [message] = messages_keyed(referral_settings, dlq_topic(TOPIC_PATIENT_MESSAGES), referral_id)
    headers = dict(message.headers)
    assert headers["dlq.error_type"] == b"PoisonEvent"
    assert b"status" in headers["dlq.error"]
    assert b"bounced" not in headers["dlq.error"] and PHONE.encode() not in headers["dlq.error"]
    assert json.loads(message.value)["id"] == event["id"]
    assert ref_conn.execute("SELECT count(*) FROM referral.patient_messages WHERE message_id = %s",
                            (event["data"]["message_id"],)).fetchone() == (0,)
