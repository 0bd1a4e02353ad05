"""The triage API through the Flask test client, against the real database:
GET /v1/decisions/<report_id> and GET /v1/rules, staff only."""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.app_support import flask_app
from tests.triage_support import clinical, decide_as_worker, report_event

from services.admin.credentials import kiosk_add, staff_add
from services.triage.app import create_app

pytestmark = pytest.mark.integration

CONTRACT_FIELDS = {"care_level", "rules_version", "fired", "likely_source", "possible_causes", "notes",
                   "advice", "decided_at"}


@pytest.fixture(scope="module")
def app(triage_settings):
    with flask_app(create_app, triage_settings) as app:
        yield app


@pytest.fixture(scope="module")
def scheduler(triage_settings):
    token = staff_add(triage_settings, f"triage-api-{uuid.uuid4().hex[:8]}", "scheduler")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def kiosk(triage_settings):
    return {"Authorization": f"Bearer {kiosk_add(triage_settings, f'triage-api-{uuid.uuid4().hex[:8]}')}"}


@pytest.fixture
def urgent_report(triage_conn, rules) -> str:
    event = report_event(clinical(severity=8, onset="sudden", trauma=True, locations=("groin",)))
    decide_as_worker(triage_conn, rules, event)
    return event["data"]["report_id"]


def paths() -> list[str]:
    return [f"/v1/decisions/{uuid.uuid4()}", "/v1/rules"]


@pytest.mark.parametrize("path", paths())
@pytest.mark.parametrize("credentials", ["none", "bad", "basic", "kiosk"])
def test_staff_only(client, kiosk, path, credentials):
    headers = {"none": {}, "bad": {"Authorization": "Bearer staff_not-a-real-token"},
               "basic": {"Authorization": "Basic c2NoZWR1bGVyOnB3"}, "kiosk": kiosk}[credentials]
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_decision_has_the_contracts_fields(client, scheduler, urgent_report, triage_conn):
    response = client.get(f"/v1/decisions/{urgent_report}", headers=scheduler)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == CONTRACT_FIELDS | {"report_id"}   # report_id: a documented extension
    assert body["report_id"] == urgent_report
    assert body["care_level"] == "urgent"
    assert body["rules_version"] == "2026-12-2"
    assert [f["id"] for f in body["fired"]] == ["URG-SEVERE", "URG-SUDDEN", "URG-TRAUMA"]
    assert all(set(f) == {"id", "reason"} and f["reason"] for f in body["fired"])
    assert body["likely_source"] == "joint"
    assert "bursitis" in body["possible_causes"]
    assert isinstance(body["notes"], list)
    assert body["advice"] and all(isinstance(line, str) for line in body["advice"])
    decided_at = datetime.fromisoformat(body["decided_at"])
    assert decided_at.utcoffset() is not None   # times carry their zone offset
    stored = triage_conn.execute("SELECT decided_at FROM triage.decisions WHERE report_id = %s",
                                 (urgent_report,)).fetchone()[0]
    assert decided_at == stored


def test_the_input_snapshot_is_not_shown(client, scheduler, urgent_report):
    body = client.get(f"/v1/decisions/{urgent_report}", headers=scheduler).get_json()
    assert "input_snapshot" not in body and "assessed_on" not in body
    assert "MRN" not in str(body) and "Silva" not in str(body)


@pytest.mark.parametrize("report_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_a_report_without_a_decision_is_404(client, scheduler, report_id):
    response = client.get(f"/v1/decisions/{report_id}", headers=scheduler)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_the_rules_in_force_are_the_shipped_file(client, scheduler, rules):
    response = client.get("/v1/rules", headers=scheduler)
    assert response.status_code == 200
    body = response.get_json()
    assert body["rules_version"] == rules.version
    assert body["settings"]["severe_pain_min"] == 7
    assert [rule["id"] for rule in body["rules"]] == [rule.id for rule in rules.rules]


def test_an_admin_may_read_too(client, triage_settings, urgent_report):
    token = staff_add(triage_settings, f"triage-admin-{uuid.uuid4().hex[:8]}", "admin")
    response = client.get(f"/v1/decisions/{urgent_report}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_the_openapi_document_lists_both_endpoints(client):
    spec = client.get("/openapi.json").get_json()
    assert {"/v1/decisions/{report_id}", "/v1/rules"} <= set(spec["paths"])
    assert "input_snapshot" not in spec["components"]["schemas"]["Decision"]["properties"]
