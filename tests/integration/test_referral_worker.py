"""The referral worker over real Kafka: a triage decision on its topic becomes a referral,
announced on clinic.referral-events.v1 with the report's trace; bad decisions are dead-lettered."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.app_support import WorkerThread
from tests.kafka_support import admin_security
from tests.referral_support import decision_event, mrn, referral_for_report

from services.common import envelope
from services.common.kafka_io import make_producer
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS, dlq_topic
from services.referral.worker import on_decision

pytestmark = pytest.mark.integration

TIMEOUT_S = 60


@pytest.fixture
def running_worker(referral_settings):
    with WorkerThread(referral_settings, migrations_package="services.referral",
                      handlers={TOPIC_DECISIONS: on_decision}):
        yield


def publish(settings, event: dict, traceparent: str) -> None:
    producer = make_producer(settings.kafka_bootstrap, "referral-test", admin_security(settings.kafka_bootstrap))
    try:
        producer.send(TOPIC_DECISIONS, key=event["subject"].encode(), value=envelope.encode(event),
                      headers=[("traceparent", traceparent.encode())]).get(timeout=30)
    finally:
        producer.close(timeout=5)


def wait_for(predicate, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def messages_keyed(settings, topic: str, key: str, want: int = 1) -> list:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=1000,
                             **admin_security(settings.kafka_bootstrap))
    found = []
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(found) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                found += [m for m in batch if m.key == key.encode()]
    finally:
        consumer.close()
    return found


def test_a_decision_on_kafka_becomes_a_referral_and_an_event(referral_settings, ref_conn, running_worker):
    event = decision_event("specialist", mrn())
    report_id = event["data"]["report_id"]
    traceparent = envelope.new_traceparent()
    publish(referral_settings, event, traceparent)

    referral = wait_for(lambda: referral_for_report(ref_conn, report_id), "the referral")
    assert referral["status"] in ("booked", "waitlisted") and referral["priority"] == "routine"

    [message] = messages_keyed(referral_settings, TOPIC_REFERRAL_EVENTS, report_id)
    published = json.loads(message.value)
    assert published["type"] == f"referral.{referral['status']}"
    assert published["data"]["referral_id"] == referral["referral_id"]
    assert (published["data"]["report_id"], published["data"]["report_count"], published["data"]["sequence"]) == (
        report_id, 1, 1)
    assert "report_ids" not in published["data"] and "linked_report_id" not in published["data"]  # issue 15
    rid = referral["referral_id"]  # issue 17: the FHIR resources the booking or waitlisting changed
    assert published["fhirchanged"].split(" ") == [f"ServiceRequest/{rid}"] + (
        [f"Appointment/{rid}", f"Slot/{referral['slot_id']}"] if referral["status"] == "booked" else [])
    header = dict(message.headers)["traceparent"].decode()
    assert envelope.trace_id(header) == envelope.trace_id(traceparent)  # one trace through the services


def test_a_decision_that_cannot_be_booked_is_dead_lettered(referral_settings, ref_conn, running_worker):
    event = decision_event("urgent", mrn())
    del event["data"]["patient"]
    report_id = event["data"]["report_id"]
    publish(referral_settings, event, envelope.new_traceparent())

    [message] = messages_keyed(referral_settings, dlq_topic(TOPIC_DECISIONS), report_id)
    headers = dict(message.headers)
    assert headers["dlq.error_type"] == b"PoisonEvent"
    assert b"patient" in headers["dlq.error"]
    assert referral_for_report(ref_conn, report_id) is None
    assert uuid.UUID(report_id)
