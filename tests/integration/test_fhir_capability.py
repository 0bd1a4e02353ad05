"""The CapabilityStatement against what the server really answers: every resource type it
lists is read (and only those), every search parameter it declares finds what it should,
one it does not declare is refused, and no interaction it leaves out is answered."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.referral.app import create_app
from services.referral.fhir.ids import MRN_SYSTEM
from tests.app_support import flask_app
from tests.fhir_support import BASE, FHIR_JSON, build_clinic, valid
from tests.referral_support import staff_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def clinic(referral_settings):
    return build_clinic(referral_settings)


@pytest.fixture(scope="module")
def staff(referral_settings):
    return {"Authorization": f"Bearer {staff_token(referral_settings, 'admin')}"}


@pytest.fixture(scope="module")
def statement(app):
    response = app.test_client().get(f"{BASE}/metadata")  # public, as /openapi.json
    assert response.status_code == 200 and response.content_type == FHIR_JSON
    return valid(response.get_json())


@pytest.fixture
def declared(statement) -> dict[str, dict]:
    [rest] = statement["rest"]
    return {resource["type"]: resource for resource in rest["resource"]}


def known_ids(clinic) -> dict[str, str]:
    provider = clinic.provider["provider_id"]
    return {"ServiceRequest": clinic.referrals["a"], "Appointment": clinic.referrals["a"],
            "Patient": clinic.referrals["a"], "Slot": clinic.slots[0], "Schedule": provider,
            "HealthcareService": provider, "Location": provider}


def samples(clinic) -> dict[tuple[str, str], tuple[str, str]]:
    """(type, declared parameter) -> (a value, the id it must find among the clinic's)."""
    a, b, c = clinic.referrals["a"], clinic.referrals["b"], clinic.referrals["c"]
    since, until = (clinic.now - timedelta(minutes=1)).isoformat(), (clinic.now + timedelta(days=59)).isoformat()
    start_day = (clinic.now + timedelta(days=1)).date().isoformat()
    return {
        ("ServiceRequest", "status"): (f"completed&patient={c}", c),
        ("ServiceRequest", "priority"): (f"urgent&patient={a}", a),
        ("ServiceRequest", "patient"): (f"Patient/{a}", a),
        ("ServiceRequest", "subject"): (f"Patient/{a}", a),
        ("ServiceRequest", "patient.identifier"): (f"{MRN_SYSTEM}|{clinic.mrns['a']}", a),
        ("ServiceRequest", "subject:Patient.identifier"): (clinic.mrns["a"], a),
        ("ServiceRequest", "_lastUpdated"): (f"ge{since}&_lastUpdated=lt{until}", a),
        ("Appointment", "date"): (f"{start_day}", a),
        ("Appointment", "status"): (f"fulfilled&patient=Patient/{c}", c),
        ("Appointment", "patient"): (f"Patient/{b}", b),
        ("Slot", "schedule"): (f"Schedule/{clinic.provider['provider_id']}", clinic.slots[0]),
        ("Slot", "start"): (f"{start_day}&schedule=Schedule/{clinic.provider['provider_id']}", clinic.slots[0]),
        ("Slot", "status"): (f"free&schedule=Schedule/{clinic.provider['provider_id']}", clinic.slots[3]),
    }


def every_id(client, staff, url: str) -> list[str]:
    found = []
    while url:
        response = client.get(url, headers=staff)
        assert response.status_code == 200, response.get_data(as_text=True)
        bundle = valid(response.get_json())
        assert bundle["type"] == "searchset"
        found += [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return found


def test_it_is_a_read_only_r4_json_server(statement):
    assert (statement["fhirVersion"], statement["kind"], statement["status"]) == ("4.0.1", "instance", "active")
    assert FHIR_JSON in statement["format"]
    codes = {i["code"] for r in statement["rest"][0]["resource"] for i in r["interaction"]}
    assert codes <= {"read", "search-type", "history-instance"}


def test_every_type_listed_is_read_and_no_other(client, staff, clinic, declared):
    ids = known_ids(clinic)
    assert set(declared) == set(ids), "a listed type without a known id here, or the other way round"
    for resource_type in declared:
        response = client.get(f"{BASE}/{resource_type}/{ids[resource_type]}", headers=staff)
        assert response.status_code == 200 and valid(response.get_json())["id"] == ids[resource_type]
        missing = client.get(f"{BASE}/{resource_type}/{uuid.uuid4()}", headers=staff)
        assert missing.status_code == 404
        assert valid(missing.get_json())["issue"][0]["diagnostics"] == f"No such {resource_type}."
    for unlisted in ("Practitioner", "Observation", "Encounter", "Organization"):
        response = client.get(f"{BASE}/{unlisted}/{uuid.uuid4()}", headers=staff)
        assert response.status_code == 404 and "No such" not in response.get_data(as_text=True)
        assert client.get(f"{BASE}/{unlisted}", headers=staff).status_code == 404


def test_every_declared_search_parameter_finds_what_it_should(client, staff, clinic, declared):
    cases = samples(clinic)
    listed = {(t, p["name"]) for t, r in declared.items() for p in r.get("searchParam", [])}
    assert listed == set(cases), "a declared parameter without a case here, or the other way round"
    for (resource_type, name), (value, expected) in cases.items():
        found = every_id(client, staff, f"{BASE}/{resource_type}?{name}={value.replace('+', '%2B')}")
        assert expected in found, (resource_type, name)


def test_search_is_declared_exactly_where_it_is_answered(client, staff, declared):
    for resource_type, resource in declared.items():
        searches = {"code": "search-type"} in resource["interaction"]
        response = client.get(f"{BASE}/{resource_type}", headers=staff)
        assert response.status_code == (200 if searches else 404), resource_type
        assert bool(resource.get("searchParam")) == searches


@pytest.mark.parametrize("parameter", ["foo", "_id", "_sort", "_summary", "_include", "identifier", "code",
                                       "performer", "actor", "name"])
def test_an_undeclared_parameter_is_refused(client, staff, declared, parameter):
    for resource_type, resource in declared.items():
        if {"code": "search-type"} not in resource["interaction"]:
            continue
        assert parameter not in {p["name"] for p in resource["searchParam"]}
        response = client.get(f"{BASE}/{resource_type}?{parameter}=x", headers=staff)
        assert response.status_code == 400, (resource_type, parameter)
        assert valid(response.get_json())["issue"][0]["location"] == [f"http.{parameter}"]


def test_history_is_declared_exactly_where_it_is_answered(client, staff, clinic, declared):
    ids = known_ids(clinic)
    for resource_type, resource in declared.items():
        history = {"code": "history-instance"} in resource["interaction"]
        response = client.get(f"{BASE}/{resource_type}/{ids[resource_type]}/_history", headers=staff)
        assert response.status_code == (200 if history else 404), resource_type
        if history:
            assert valid(response.get_json())["type"] == "history"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_no_write_is_answered(client, staff, clinic, declared, method):
    """405 where a GET is answered (the path exists), 404 where nothing is (a type without search)."""
    ids = known_ids(clinic)
    for resource_type, resource in declared.items():
        searches = {"code": "search-type"} in resource["interaction"]
        for path, status in ((f"{BASE}/{resource_type}", 405 if searches else 404),
                             (f"{BASE}/{resource_type}/{ids[resource_type]}", 405)):
            response = client.open(path, method=method, headers=staff, json={"resourceType": resource_type})
            assert response.status_code == status, (method, path)
            assert valid(response.get_json())["resourceType"] == "OperationOutcome"
