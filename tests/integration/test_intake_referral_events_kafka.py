"""Issue 15 over real Kafka: the intake worker reads a backlog of referral events of both forms
(published before the upgrade, every report in `report_ids`; since, the first report, a count
and the report a change linked; since issue 17, also `fhirchanged`, the FHIR resources changed)
from clinic.referral-events.v1, as it would at the upgrade, and every report of the referral
ends with the newest snapshot; the patient is told on the newest report's contact details."""
from __future__ import annotations

import time
import uuid

import pytest

from tests.app_support import WorkerThread
from tests.intake_support import report_body
from tests.integration.test_intake_status_view import snapshot
from tests.kafka_support import admin_security
from tests.patient_message_support import message_rows

from services.common import envelope
from services.common.kafka_io import make_producer
from services.common.settings import TOPIC_REFERRAL_EVENTS
from services.intake import worker

pytestmark = pytest.mark.integration

TIMEOUT_S = 60


@pytest.fixture
def app(intake_app):
    return intake_app


def publish(settings, events: list[dict], key: str) -> None:
    """In this order, on one partition (the referral's first report is the key)."""
    producer = make_producer(settings.kafka_bootstrap, "intake-test", admin_security(settings.kafka_bootstrap))
    try:
        for event in events:
            producer.send(TOPIC_REFERRAL_EVENTS, key=key.encode(), value=envelope.encode(event),
                          headers=[("traceparent", envelope.new_traceparent().encode())]).get(timeout=30)
    finally:
        producer.close(timeout=5)


def held(conn, report_ids: list[str]) -> dict[str, tuple]:
    rows = conn.execute("SELECT report_id::text, referral_id::text, referral_sequence FROM intake.reports"
                        " WHERE report_id = ANY(%s::uuid[])", (report_ids,)).fetchall()
    return {report_id: (referral_id, sequence) for report_id, referral_id, sequence in rows}


def test_a_backlog_of_both_forms_on_the_topic_reaches_every_report(client, kiosk, intake_settings, intake_conn):
    reports = []
    for n in range(3):
        email = f"k{n}-{uuid.uuid4().hex[:8]}@example.org"
        body = report_body(patient__contact_consent=["email"], patient__email=email)
        response = client.post("/v1/reports", json=body, headers=kiosk.headers)
        assert response.status_code == 202
        reports.append(response.get_json()["report_id"])
    first, second, third = reports
    referral_id = str(uuid.uuid4())
    old_booked = snapshot([first], status="booked", sequence=1, referral_id=referral_id, old_form=True)
    old_linked = snapshot([first, second], status="booked", sequence=2, referral_id=referral_id, linked=second,
                          old_form=True)
    new_linked = snapshot([first, second, third], status="booked", sequence=3, referral_id=referral_id,
                          linked=third)
    new_waitlisted = snapshot([first, second, third], status="waitlisted", sequence=4, referral_id=referral_id,
                              slot=False)
    replayed = snapshot([first, second], status="booked", sequence=2, referral_id=referral_id, old_form=True)
    for same_booking in (old_linked, new_linked, replayed):
        same_booking["data"]["appointment"] = old_booked["data"]["appointment"]
    assert "report_ids" in old_linked["data"] and "report_ids" not in new_linked["data"]
    # Issue 17: events since name the FHIR resources they change (an extension attribute intake
    # does not read); those from before have none, whichever form their data has.
    for before in (old_booked, old_linked, new_linked, replayed):
        del before["fhirchanged"]
    assert new_waitlisted["fhirchanged"] == f"ServiceRequest/{referral_id}"
    publish(intake_settings, [old_booked, old_linked, new_linked, new_waitlisted, replayed], key=first)

    with WorkerThread(intake_settings, migrations_package="services.intake", handlers=worker.HANDLERS,
                      group_id=f"clinic-intake-test-{uuid.uuid4().hex[:8]}"):
        deadline = time.monotonic() + TIMEOUT_S
        want = {report_id: (referral_id, 4) for report_id in reports}
        while held(intake_conn, reports) != want and time.monotonic() < deadline:
            time.sleep(0.2)
        # the last event (an old one replayed) applied too: its inbox row
        while time.monotonic() < deadline and not intake_conn.execute(
                "SELECT 1 FROM intake.inbox WHERE event_id = %s", (replayed["id"],)).fetchone():
            time.sleep(0.2)

    assert held(intake_conn, reports) == want
    for report_id in reports:
        shown = client.get(f"/v1/reports/{report_id}", headers=kiosk.headers).get_json()
        assert (shown["status"], shown["referral"]["referral_id"]) == ("waitlisted", referral_id)
    # Booked on the first report's details, waitlisted on the newest's; the replay told nothing.
    assert [(r["sequence"], r["change"], r["report_id"]) for r in message_rows(intake_conn, referral_id)] == [
        (1, "booked", first), (4, "waitlisted", third)]
