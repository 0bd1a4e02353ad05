"""The patient's language (issue 18) on the real database: a referral made from a Spanish
decision says "es" in the API (list and detail) and in the FHIR Patient, by the worker's one-
event path and its batch path alike; a newer linked report's language replaces it (the
patient's own latest choice), moving the FHIR Patient's version and naming it in the link's
event; decisions from before languages are English."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.common.inbox import Delivery
from services.common.settings import TOPIC_DECISIONS
from services.referral import decision_batch
from services.referral.app import create_app
from tests.app_support import flask_app
from tests.fhir_support import BASE, valid
from tests.referral_support import (TRACEPARENT, decide, decision_event, fhir_as_the_snapshot_says, fhir_changes,
                                    mrn, outbox_events, referral_for_report, staff_token)

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
BCP47 = "urn:ietf:bcp:47"


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def scheduler(referral_settings):
    return {"Authorization": f"Bearer {staff_token(referral_settings, 'scheduler')}"}


def queue_item(client, scheduler, report_id: str) -> dict:
    response = client.get("/v1/referrals", headers=scheduler, query_string={"report_id": report_id})
    assert response.status_code == 200
    [item] = response.get_json()["items"]
    return item


def detail(client, scheduler, referral_id: str) -> dict:
    response = client.get(f"/v1/referrals/{referral_id}", headers=scheduler)
    assert response.status_code == 200
    return response.get_json()


def fhir_patient(client, scheduler, referral_id: str) -> dict:
    response = client.get(f"{BASE}/Patient/{referral_id}", headers=scheduler)
    assert response.status_code == 200
    return valid(response.get_json())


def spoken(patient: dict) -> list[str]:
    return [coding["code"] for c in patient["communication"] for coding in c["language"]["coding"]
            if coding["system"] == BCP47 and c["preferred"]]


def test_a_spanish_decisions_referral_speaks_spanish_in_the_api_and_fhir(client, scheduler, ref_conn, now):
    report_id = decide(ref_conn, "specialist", mrn(), now, language="es")
    item = queue_item(client, scheduler, report_id)
    assert item["patient"]["language"] == "es" and item["patient"]["display_name"] == "Ana Silva"
    assert detail(client, scheduler, item["referral_id"])["patient"]["language"] == "es"
    patient = fhir_patient(client, scheduler, item["referral_id"])
    assert spoken(patient) == ["es"] and patient["meta"]["versionId"] == "1"


def test_a_decision_from_before_languages_and_an_unknown_language_are_english(client, scheduler, ref_conn, now):
    before = decide(ref_conn, "urgent", mrn(), now)
    unknown = decide(ref_conn, "urgent", mrn(), now, language="tlh")
    for report_id in (before, unknown):
        item = queue_item(client, scheduler, report_id)
        assert item["patient"]["language"] == "en"
        assert spoken(fhir_patient(client, scheduler, item["referral_id"])) == ["en"]


def test_the_batch_path_keeps_each_new_patients_language(client, scheduler, ref_conn, now):
    events = [decision_event("specialist", mrn(), language=language) for language in ("es", "en", "es")]
    delivery = Delivery(topic=TOPIC_DECISIONS, partition=0, offset=0, key="k", traceparent=TRACEPARENT)
    with ref_conn.transaction():
        decision_batch.write(ref_conn, [decision_batch.prepare(e, delivery) for e in events], now=now)
    assert [queue_item(client, scheduler, e["data"]["report_id"])["patient"]["language"] for e in events] == [
        "es", "en", "es"]


def test_a_newer_linked_report_gives_the_referral_its_language(client, scheduler, ref_conn, now):
    patient_mrn = mrn()
    first = decide(ref_conn, "specialist", patient_mrn, now, language="en")
    referral_id = referral_for_report(ref_conn, first)["referral_id"]
    assert queue_item(client, scheduler, first)["patient"]["language"] == "en"

    second = decide(ref_conn, "specialist", patient_mrn, now + H, language="es")
    assert referral_for_report(ref_conn, second)["referral_id"] == referral_id  # linked, not a new referral
    item = queue_item(client, scheduler, second)
    assert item["patient"]["language"] == "es" and item["report_ids"] == [first, second]
    assert item["patient"]["display_name"] == "Ana Silva"  # identity stays the first report's
    assert detail(client, scheduler, referral_id)["patient"]["language"] == "es"
    patient = fhir_patient(client, scheduler, referral_id)
    assert spoken(patient) == ["es"]
    assert patient["meta"]["versionId"] == "2" and patient["meta"]["lastUpdated"].startswith(
        (now + H).strftime("%Y-%m-%dT%H:%M"))

    # the same language again changes nothing of the patient; back to English changes it again
    decide(ref_conn, "specialist", patient_mrn, now + 2 * H, language="es")
    assert fhir_patient(client, scheduler, referral_id)["meta"]["versionId"] == "2"
    last = decide(ref_conn, "urgent", patient_mrn, now + 3 * H, language="en")
    assert queue_item(client, scheduler, last)["patient"]["language"] == "en"
    assert fhir_patient(client, scheduler, referral_id)["meta"]["versionId"] == "3"

    changes = fhir_changes(ref_conn, referral_id)
    patient_ref = f"Patient/{referral_id}"
    assert [patient_ref in refs for _type, refs in changes] == [False, True, False, True]
    for (event_type, _key, data, _tp), (_type, refs) in zip(outbox_events(ref_conn, referral_id), changes,
                                                             strict=True):
        fhir_as_the_snapshot_says({"type": event_type, "data": data, "fhirchanged": " ".join(refs)})
        assert "language" not in data  # snapshots carry no patient data: intake holds it


def test_the_openapi_document_describes_the_patients_language(client):
    spec = client.get("/openapi.json").get_json()
    patient = spec["components"]["schemas"]["Patient"]["properties"]["language"]
    assert patient["enum"] == ["en", "es"] and "newest linked report" in patient["description"]
