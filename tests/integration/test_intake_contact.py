"""The patient's email and contact consent through POST /v1/reports (issue 19 part 1), against
the real database: stored with the patient, kept out of the report event, refused in the one
error shape without a trace, and described by the served OpenAPI document."""
from __future__ import annotations

import json

import pytest

from tests.intake_support import error_of, report_body, table_counts

pytestmark = pytest.mark.integration

NEEDS_PHONE = "sms needs a phone number: send patient.phone, or leave sms out."
NEEDS_EMAIL = "email needs an email address: send patient.email, or leave email out."


@pytest.fixture
def app(intake_app):
    return intake_app


def post(client, kiosk, body):
    return client.post("/v1/reports", data=json.dumps(body),
                       headers={**kiosk.headers, "Content-Type": "application/json"})


def stored(conn, report_id: str) -> tuple[dict, dict]:
    """The report's patient and its one outbox event."""
    patient = conn.execute("SELECT patient FROM intake.reports WHERE report_id = %s", (report_id,)).fetchone()[0]
    event, = [row[0] for row in conn.execute("SELECT payload FROM intake.outbox WHERE key = %s", (report_id,))]
    return patient, event


def fields_of(response) -> dict[str, str]:
    return {f["field"]: f["message"] for f in error_of(response)["fields"]}


@pytest.mark.parametrize("consent", [["sms", "email"], ["email"]])
def test_email_and_consent_are_stored_with_the_patient_and_stay_in_intake(client, kiosk, intake_conn, consent):
    body = report_body(patient__email="  Ana.Silva+hip@Example.org ", patient__contact_consent=consent)
    response = post(client, kiosk, body)
    assert response.status_code == 202, response.get_json()

    patient, event = stored(intake_conn, response.get_json()["report_id"])
    assert patient["email"] == "Ana.Silva+hip@Example.org"  # trimmed, as typed otherwise
    assert patient["contact_consent"] == consent
    assert patient["phone"] == "+15550100"
    # The report event is what it was: email and consent, like the phone, never leave intake.
    assert set(event["data"]["patient"]) == {"mrn", "display_name", "birth_date"}
    flat = json.dumps(event).lower()
    assert "email" not in flat and "consent" not in flat and "ana.silva+hip" not in flat and "sms" not in flat


def test_without_contact_details_the_consent_is_stored_as_none(client, kiosk, intake_conn):
    response = post(client, kiosk, report_body(patient__phone=...))
    assert response.status_code == 202, response.get_json()
    patient, _ = stored(intake_conn, response.get_json()["report_id"])
    assert (patient["phone"], patient["email"], patient["contact_consent"]) == (None, None, [])


@pytest.mark.parametrize(("changes", "message"), [
    ({"patient__phone": ..., "patient__contact_consent": ["sms"]}, NEEDS_PHONE),
    ({"patient__phone": None, "patient__contact_consent": ["sms"]}, NEEDS_PHONE),
    ({"patient__contact_consent": ["email"]}, NEEDS_EMAIL),
    ({"patient__email": None, "patient__contact_consent": ["sms", "email"]}, NEEDS_EMAIL),
    ({"patient__email": "ana@example.org", "patient__contact_consent": ["email", "email"]},
     "Each channel may be listed only once."),
    ({"patient__contact_consent": ["fax"]}, None),
    ({"patient__email": "ana at example.org"}, None),
    ({"patient__email": "ana\u200b@example.org"}, None),
])
def test_a_refused_contact_is_a_422_naming_the_field_and_leaves_nothing(client, kiosk, intake_conn, changes, message):
    body = report_body(**changes)
    before = table_counts(intake_conn)
    response = post(client, kiosk, body)

    assert response.status_code == 422, response.get_json()
    assert error_of(response)["code"] == "validation_failed"
    found = fields_of(response)
    if message is not None:
        assert found == {"patient.contact_consent": message}
    else:
        assert len(found) == 1 and next(iter(found)).startswith(("patient.contact_consent", "patient.email"))
    # No patient value in the answer.
    assert body["patient"]["mrn"] not in response.get_data(as_text=True)
    assert "example.org" not in response.get_data(as_text=True)
    assert table_counts(intake_conn) == before


def test_both_missing_addresses_are_named_in_one_answer(client, kiosk):
    response = post(client, kiosk, report_body(patient__phone=..., patient__contact_consent=["sms", "email"]))
    assert response.status_code == 422
    messages = [f["message"] for f in error_of(response)["fields"] if f["field"] == "patient.contact_consent"]
    assert sorted(messages) == sorted([NEEDS_PHONE, NEEDS_EMAIL])


def test_the_served_document_describes_email_and_consent(client):
    document = client.get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    patient = schemas["Patient"]["properties"]
    assert (patient["email"]["type"], patient["email"]["format"], patient["email"]["maxLength"]) == (
        "string", "email", 254)
    consent = patient["contact_consent"]
    assert consent["uniqueItems"] is True and consent["items"]["enum"] == ["sms", "email"]
    # The consent rule, as the home-care rule is carried.
    cases = schemas["Report"]["properties"]["patient"]["anyOf"]
    assert {tuple(case.get("required", [])) for case in cases} == {(), ("phone",), ("email",), ("phone", "email")}
