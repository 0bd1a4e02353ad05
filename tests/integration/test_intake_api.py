"""POST /v1/reports and GET /v1/reports/<id> through the Flask test client, against the
real database: every answer of the contract, each refusal in the one error shape, and
no trace of a refused request in intake.reports or intake.outbox."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from tests.app_support import role_conn
from tests.intake_support import (
    error_of,
    kiosk_report_ids,
    new_kiosk,
    report_body,
    revoke,
    staff_headers,
    table_counts,
)

from services.common import outbox
from services.common.settings import TOPIC_REPORTS
from services.intake import store

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def app(intake_app):
    """Intake's app, whose test client is `client` (tests/conftest.py)."""
    return intake_app


def post(client, headers: dict, body=None, *, data: bytes | str | None = None, **extra_headers):
    """POST /v1/reports: `body` as JSON, or raw `data` (with whatever Content-Type is given)."""
    if data is None:
        data = json.dumps(body)
        extra_headers.setdefault("Content-Type", "application/json")
    return client.post("/v1/reports", data=data, headers={**headers, **extra_headers})


def fields_of(response) -> dict[str, str]:
    return {f["field"]: f["message"] for f in error_of(response).get("fields", [])}


# -- accepted -----------------------------------------------------------------------------------
def test_a_report_is_accepted_with_its_event_in_one_transaction(client, kiosk, intake_conn):
    body = report_body()
    response = post(client, kiosk.headers, body, traceparent="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")

    assert response.status_code == 202, response.get_json()
    answer = response.get_json()
    report_id = answer["report_id"]
    assert answer == {"report_id": report_id, "status": "received"}
    assert response.headers["Location"] == f"/v1/reports/{report_id}"
    assert str(uuid.UUID(report_id)) == report_id

    report = intake_conn.execute("SELECT xmin::text, patient, clinical, submitted_at FROM intake.reports"
                                 " WHERE report_id = %s", (report_id,)).fetchone()
    events = intake_conn.execute("SELECT xmin::text, topic, payload, traceparent, sent_at FROM intake.outbox"
                                 " WHERE key = %s", (report_id,)).fetchall()
    assert len(events) == 1
    event_xmin, topic, event, traceparent, sent_at = events[0]
    # Written by the same transaction: the report never exists without its event.
    assert report[0] == event_xmin
    assert report[1] == {**body["patient"], "email": None, "contact_consent": []}  # absent: none
    assert topic == TOPIC_REPORTS and sent_at is None  # no relay runs here
    assert traceparent.split("-")[1] == "ab" * 16  # the kiosk's trace goes on
    assert event["type"] == "clinic.report.submitted" and event["subject"] == report_id
    data = event["data"]
    assert data["report_id"] == report_id
    assert data["language"] == "en"  # none sent: English, as the kiosk spoke before issue 18
    assert datetime.fromisoformat(data["submitted_at"]) == report[3]  # the row's, set as it was stored
    # The birth date goes with the MRN and name: the referral service matches patients on it
    # (contract, patient matching); nothing else of the patient does.
    assert data["patient"] == {"mrn": body["patient"]["mrn"], "display_name": "Ana Silva",
                               "birth_date": body["patient"]["birth_date"]}
    for section in ("activity", "pain", "function", "home_care"):
        assert data[section] == body[section]
    # The phone stays in intake; the birth date is nowhere else in the event.
    flat = json.dumps(event)
    assert "phone" not in flat and body["patient"]["phone"] not in flat
    assert flat.count(body["patient"]["birth_date"]) == 1 and flat.count("birth_date") == 1


def test_an_accepted_report_wakes_the_outbox_relay_once_its_event_is_committed(client, kiosk, intake_settings):
    # NOTIFY is delivered at the commit of the report's transaction (services/intake/store.py):
    # when it arrives, the report's event is there for the relay to read.
    with role_conn(intake_settings) as listener:
        listener.execute(f"LISTEN {outbox.outbox_channel('intake')}")
        response = post(client, kiosk.headers, report_body())
        assert response.status_code == 202, response.get_json()
        woken = list(listener.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in woken] == [outbox.outbox_channel("intake")]
        events = listener.execute("SELECT count(*) FROM intake.outbox WHERE key = %s",
                                  (response.get_json()["report_id"],)).fetchone()[0]
    assert events == 1


def test_text_is_normalised_before_it_is_stored(client, kiosk, intake_conn):
    body = report_body(patient__given_name="  Ana ", patient__phone="+1 555-0100")
    report_id = post(client, kiosk.headers, body).get_json()["report_id"]
    patient = intake_conn.execute("SELECT patient FROM intake.reports WHERE report_id = %s",
                                  (report_id,)).fetchone()[0]
    assert patient["given_name"] == "Ana" and patient["phone"] == "+15550100"


def test_phone_is_optional(client, kiosk):
    assert post(client, kiosk.headers, report_body(patient__phone=...)).status_code == 202


# -- refused, leaving nothing behind -----------------------------------------------------------
def _long(n: int) -> str:
    return "k" * n


REFUSALS = {
    # name: (headers (None: the kiosk's own), request kwargs, status, code)
    "no credentials": ({}, {"body": report_body()}, 401, "unauthorized"),
    "unknown key": ({"Authorization": "Bearer kiosk_not-a-real-key"}, {"body": report_body()}, 401, "unauthorized"),
    "empty bearer": ({"Authorization": "Bearer "}, {"body": report_body()}, 401, "unauthorized"),
    "basic scheme": ({"Authorization": "Basic a2lvc2s6cHc="}, {"body": report_body()}, 401, "unauthorized"),
    "malformed JSON": (None, {"data": '{"patient": ', "Content-Type": "application/json"}, 400, "bad_request"),
    "empty body": (None, {"data": b"", "Content-Type": "application/json"}, 400, "bad_request"),
    "NaN is not JSON": (None, {"data": b'{"pain": {"severity": NaN}}', "Content-Type": "application/json"},
                        400, "bad_request"),
    "not UTF-8": (None, {"data": b'{"x": "\xff"}', "Content-Type": "application/json"}, 400, "bad_request"),
    "idempotency key too long": (None, {"body": report_body(), "Idempotency-Key": _long(129)},
                                 400, "invalid_idempotency_key"),
    "idempotency key blank": (None, {"body": report_body(), "Idempotency-Key": ""}, 400, "invalid_idempotency_key"),
    "body over 64 KiB": (None, {"data": b'{"x": "' + b"a" * 70_000 + b'"}', "Content-Type": "application/json"},
                         413, "payload_too_large"),
    "text/plain": (None, {"data": json.dumps(report_body()), "Content-Type": "text/plain"},
                   415, "unsupported_media_type"),
    "form encoded": (None, {"data": "patient=x", "Content-Type": "application/x-www-form-urlencoded"},
                     415, "unsupported_media_type"),
    "no content type": (None, {"data": json.dumps(report_body()), "Content-Type": ""}, 415, "unsupported_media_type"),
    "another +json type": (None, {"data": json.dumps(report_body()), "Content-Type": "application/merge-patch+json"},
                           415, "unsupported_media_type"),
    "an array": (None, {"body": [report_body()]}, 422, "validation_failed"),
    "null": (None, {"body": None}, 422, "validation_failed"),
    "unknown top-level field": (None, {"body": report_body(notes="hi")}, 422, "validation_failed"),
    "unknown nested field": (None, {"body": report_body(patient__nickname="Ana")}, 422, "validation_failed"),
    "missing section": (None, {"body": report_body(pain=...)}, 422, "validation_failed"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_report_leaves_nothing_behind(client, kiosk, intake_conn, case):
    headers, kwargs, status, code = REFUSALS[case]
    kwargs = dict(kwargs)
    before = table_counts(intake_conn)

    response = post(client, kiosk.headers if headers is None else headers, kwargs.pop("body", None),
                    data=kwargs.pop("data", None), **kwargs)

    assert response.status_code == status, response.get_json()
    assert error_of(response)["code"] == code
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert table_counts(intake_conn) == before
    assert kiosk_report_ids(intake_conn, kiosk) == []


def test_a_422_names_every_failing_field_by_its_path(client, kiosk, intake_conn):
    before = table_counts(intake_conn)
    body = report_body(
        extra=True,
        patient__nickname="Ana",
        patient__birth_date="02/04/1991",
        patient__given_name=" ",
        patient__phone="call me",
        activity__high_impact="yes",
        pain__severity=11,
        pain__locations=["groin", "knee"],
        pain__started_on="2999-01-01",
        pain__direct_trauma=...,
        function__joint_locking=1,
        home_care__measures=[],
        home_care__days=5,
    )
    response = post(client, kiosk.headers, body)

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_failed"
    failing = fields_of(response)
    assert {
        "extra", "patient.nickname", "patient.birth_date", "patient.given_name", "patient.phone",
        "activity.high_impact", "pain.severity", "pain.locations.1", "pain.started_on",
        "pain.direct_trauma", "function.joint_locking",
    } <= set(failing), failing
    assert failing["home_care.days"] == "Must be 0 when no home care measures were tried."
    assert failing["pain.severity"] == "Must be a whole number from 0 to 10."
    assert failing["extra"] == failing["patient.nickname"] == "This field is not allowed."
    assert table_counts(intake_conn) == before


def test_auth_is_checked_before_the_body(client, intake_conn):
    # An unauthenticated client learns nothing about what the API would make of its body.
    response = post(client, {}, data=b"not json", **{"Content-Type": "text/plain"})
    assert response.status_code == 401


def test_a_staff_token_is_not_a_kiosk_key(client, intake_settings, intake_conn):
    before = table_counts(intake_conn)
    response = post(client, staff_headers(intake_settings, "admin"), report_body())
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
    assert table_counts(intake_conn) == before


def test_a_revoked_key_is_refused_at_once(client, intake_settings, intake_conn):
    kiosk = new_kiosk(intake_settings)
    first = post(client, kiosk.headers, report_body())
    assert first.status_code == 202
    report_id = first.get_json()["report_id"]

    revoke(intake_settings, kiosk)  # the `clinic kiosk revoke` command's code, straight to the database

    # The same app and pool, no restart, no cache to expire.
    refused = post(client, kiosk.headers, report_body())
    assert refused.status_code == 401 and error_of(refused)["code"] == "unauthorized"
    assert client.get(f"/v1/reports/{report_id}", headers=kiosk.headers).status_code == 401
    assert kiosk_report_ids(intake_conn, kiosk) == [report_id]


def test_route_errors_have_the_same_shape(client, kiosk):
    missing = client.get("/v1/nothing-here", headers=kiosk.headers)
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong_method = client.delete("/v1/reports", headers=kiosk.headers)
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"


# -- idempotency ------------------------------------------------------------------------------
def test_the_same_key_and_body_give_the_same_report_and_create_nothing(client, kiosk, intake_conn):
    body = report_body()
    first = post(client, kiosk.headers, body, **{"Idempotency-Key": "visit-1"})
    assert first.status_code == 202
    before = table_counts(intake_conn)

    # The same report, serialised differently (key order, spacing), is the same body.
    again = post(client, kiosk.headers, data=json.dumps(body, sort_keys=True, indent=2),
                 **{"Content-Type": "application/json", "Idempotency-Key": "visit-1"})

    assert again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert table_counts(intake_conn) == before
    assert kiosk_report_ids(intake_conn, kiosk) == [first.get_json()["report_id"]]


def test_the_same_key_with_another_body_is_a_409(client, kiosk, intake_conn):
    body = report_body()
    first = post(client, kiosk.headers, body, **{"Idempotency-Key": "visit-2"})
    before = table_counts(intake_conn)

    other = dict(body, pain={**body["pain"], "severity": 3})
    conflict = post(client, kiosk.headers, other, **{"Idempotency-Key": "visit-2"})

    assert conflict.status_code == 409 and error_of(conflict)["code"] == "idempotency_conflict"
    assert table_counts(intake_conn) == before
    assert kiosk_report_ids(intake_conn, kiosk) == [first.get_json()["report_id"]]


def test_idempotency_keys_belong_to_one_kiosk(client, intake_settings, intake_conn):
    one, two = new_kiosk(intake_settings), new_kiosk(intake_settings)
    body = report_body()
    a = post(client, one.headers, body, **{"Idempotency-Key": "shared-key"})
    b = post(client, two.headers, body, **{"Idempotency-Key": "shared-key"})
    # And another body with that key from a third kiosk is no conflict either.
    c = post(client, new_kiosk(intake_settings).headers, report_body(), **{"Idempotency-Key": "shared-key"})

    assert [r.status_code for r in (a, b, c)] == [202, 202, 202]
    assert len({r.get_json()["report_id"] for r in (a, b, c)}) == 3
    assert kiosk_report_ids(intake_conn, one) == [a.get_json()["report_id"]]
    assert kiosk_report_ids(intake_conn, two) == [b.get_json()["report_id"]]


def test_without_a_key_every_post_is_a_new_report(client, kiosk, intake_conn):
    body = report_body()
    ids = {post(client, kiosk.headers, body).get_json()["report_id"] for _ in range(2)}
    assert len(ids) == 2 and sorted(kiosk_report_ids(intake_conn, kiosk)) == sorted(ids)


# -- reading a report -------------------------------------------------------------------------
def test_who_may_read_a_report(client, intake_settings, kiosk):
    report_id = post(client, kiosk.headers, report_body()).get_json()["report_id"]
    path = f"/v1/reports/{report_id}"

    own = client.get(path, headers=kiosk.headers)
    assert own.status_code == 200
    assert own.get_json() == {"report_id": report_id, "status": "received", "care_level": None,
                              "advice": [], "referral": None, "language": "en", "advice_items": [],
                              "reasons": []}
    assert client.get(path, headers=staff_headers(intake_settings, "scheduler")).get_json() == own.get_json()
    assert client.get(path, headers=staff_headers(intake_settings, "admin")).status_code == 200

    other = client.get(path, headers=new_kiosk(intake_settings).headers)
    assert other.status_code == 404 and error_of(other)["code"] == "not_found"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic a2lvc2s6cHc="}):
        anonymous = client.get(path, headers=headers)
        assert anonymous.status_code == 401 and error_of(anonymous)["code"] == "unauthorized"


def test_a_spanish_report_records_its_language_and_is_shown_its_outcome_in_spanish(client, kiosk, intake_conn):
    body = {**report_body(), "language": "es"}
    report_id = post(client, kiosk.headers, body).get_json()["report_id"]
    language, event = intake_conn.execute(
        "SELECT r.language, o.payload FROM intake.reports r JOIN intake.outbox o ON o.key = r.report_id::text"
        " WHERE r.report_id = %s", (report_id,)).fetchone()
    assert language == "es" and event["data"]["language"] == "es"

    decision = {"report_id": report_id, "care_level": "self_care", "decided_at": datetime.now(UTC).isoformat(),
                "advice": ["Ice the sore area.", "Come back if it gets worse."],
                "advice_ids": ["ice", "come-back-self-care"], "safety_netting": ["come-back-self-care"],
                "fired": [{"id": "SELF-CARE", "reason": "No warning signs.", "reason_id": "SELF-CARE"}],
                "language": "es",
                "patient_text": {"advice": ["Póngase hielo.", "Vuelva si empeora."],
                                 "reasons": ["Ninguna señal de alarma."]}}
    store.record_decisions(intake_conn, [decision])
    shown = client.get(f"/v1/reports/{report_id}", headers=kiosk.headers).get_json()
    assert shown["language"] == "es" and shown["care_level"] == "self_care"
    assert shown["advice"] == ["Póngase hielo.", "Vuelva si empeora."]
    assert shown["advice_items"] == [{"id": "ice", "text": "Póngase hielo.", "safety_netting": False},
                                     {"id": "come-back-self-care", "text": "Vuelva si empeora.",
                                      "safety_netting": True}]
    assert shown["reasons"] == [{"rule": "SELF-CARE", "reason_id": "SELF-CARE", "text": "Ninguna señal de alarma."}]


def test_a_retry_that_names_the_default_language_is_the_same_report(client, kiosk, intake_conn):
    # A kiosk upgraded between a send and its retry adds "language": "en": the same answers.
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = report_body()
    first = post(client, kiosk.headers, body, **key)
    again = post(client, kiosk.headers, {**body, "language": "en"}, **key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.get_json()["report_id"] == first.get_json()["report_id"]
    other = post(client, kiosk.headers, {**body, "language": "es"}, **key)
    assert other.status_code == 409


@pytest.mark.parametrize("report_id", [str(uuid.uuid4()), "not-a-uuid", f"urn:uuid:{uuid.uuid4()}", "1" * 40])
def test_an_unknown_report_is_404(client, kiosk, report_id):
    response = client.get(f"/v1/reports/{report_id}", headers=kiosk.headers)
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_another_form_of_the_same_uuid_finds_the_report(client, kiosk):
    report_id = post(client, kiosk.headers, report_body()).get_json()["report_id"]
    response = client.get(f"/v1/reports/{report_id.replace('-', '').upper()}", headers=kiosk.headers)
    assert response.status_code == 200 and response.get_json()["report_id"] == report_id


# -- a kiosk key on staff endpoints -------------------------------------------------------------
@pytest.fixture(scope="module")
def triage_client(settings_for):
    from services.triage.app import create_app

    app = create_app(settings_for("triage"))
    yield app.test_client()
    app.extensions["clinic"].pool.close()


@pytest.mark.parametrize("path", ["/v1/rules", f"/v1/decisions/{uuid.uuid4()}"])
def test_a_kiosk_key_on_a_staff_endpoint_is_401(triage_client, kiosk, intake_settings, path):
    refused = triage_client.get(path, headers=kiosk.headers)
    assert refused.status_code == 401 and error_of(refused)["code"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    # The same endpoint answers staff, so the 401 is about the credential.
    assert triage_client.get("/v1/rules", headers=staff_headers(intake_settings)).status_code == 200


# -- OpenAPI ---------------------------------------------------------------------------------------
def resolve(spec: dict, node: dict) -> dict:
    """Follow $refs (and a one-item allOf, apispec's way to describe a referenced schema)."""
    while "$ref" in node or len(node.get("allOf", [])) == 1:
        if "allOf" in node:
            node = node["allOf"][0]
            continue
        _, _, kind, name = node["$ref"].split("/")
        node = spec["components"][kind][name]
    return node


def test_the_openapi_document_describes_post_reports(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]

    post_op = spec["paths"]["/v1/reports"]["post"]
    body = post_op["requestBody"]
    assert body["required"] is True
    content = body["content"]["application/json"]
    report = resolve(spec, content["schema"])
    assert set(report["required"]) == {"patient", "activity", "pain", "function", "home_care"}
    assert report.get("additionalProperties") is False  # unknown fields are refused
    pain = resolve(spec, report["properties"]["pain"])
    assert pain["properties"]["severity"]["minimum"] == 0 and pain["properties"]["severity"]["maximum"] == 10
    assert content["example"]["patient"]["mrn"] == "MRN-0042"  # the contract's example

    responses = post_op["responses"]
    assert {"202", "400", "401", "409", "413", "415", "422", "503"} <= set(responses)
    accepted = responses["202"]
    assert "Location" in accepted["headers"]
    assert resolve(spec, accepted["content"]["application/json"]["schema"])["required"] == ["report_id", "status"]
    error_schema = spec["components"]["schemas"]["Error"]
    for status in ("400", "401", "409", "413", "415", "422", "503"):
        answer = resolve(spec, responses[status])
        assert answer["description"]
        assert resolve(spec, answer["content"]["application/json"]["schema"]) == error_schema
    # The documented error shape is the one the API answers with.
    detail = resolve(spec, error_schema["properties"]["error"])
    assert {"code", "message", "fields"} <= set(detail["properties"])
    example_422 = responses["422"]["content"]["application/json"]["example"]["error"]
    assert example_422["fields"][0]["field"] == "pain.severity"

    parameters = {p["name"]: p for p in post_op["parameters"]}
    assert parameters["Idempotency-Key"]["in"] == "header"
    assert parameters["Idempotency-Key"]["schema"]["maxLength"] == 128

    get_op = spec["paths"]["/v1/reports/{report_id}"]["get"]
    assert {"200", "401", "404"} <= set(get_op["responses"])
    status = resolve(spec, get_op["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(status["properties"]) == {"report_id", "status", "care_level", "advice", "referral", "language",
                                         "advice_items", "reasons"}
    assert "/kiosk" not in spec["paths"]
