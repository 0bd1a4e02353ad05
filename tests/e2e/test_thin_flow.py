"""A report travels kiosk -> intake -> Kafka -> triage -> Kafka -> referral -> Kafka -> intake,
through the real processes started as `make run` starts them."""
from __future__ import annotations

import pytest
import requests

from .flow_helpers import SELF_CARE, URGENT, report_body, submit, wait_for_report

pytestmark = pytest.mark.e2e


def test_urgent_report_is_triaged_and_referred(live_stack):
    key = live_stack.kiosk_key()
    scheduler = live_stack.staff_token("scheduler")
    intake = live_stack.base_url["intake"]

    response = submit(intake, key, report_body(**URGENT))
    assert response.status_code == 202, response.text
    report_id = response.json()["report_id"]
    assert response.headers["Location"] == f"/v1/reports/{report_id}"

    view = wait_for_report(intake, key, report_id)
    assert view["care_level"] == "urgent"
    assert view["status"] in {"referred", "waitlisted"}
    assert view["referral"]["priority"] == "urgent"
    assert view["advice"], "a decision always carries advice"

    decision = requests.get(f"{live_stack.base_url['triage']}/v1/decisions/{report_id}",
                            headers={"Authorization": f"Bearer {scheduler}"}, timeout=10).json()
    assert decision["care_level"] == "urgent"
    assert {f["id"] for f in decision["fired"]} == {"URG-SEVERE", "URG-SUDDEN", "URG-TRAUMA"}

    referrals = requests.get(f"{live_stack.base_url['referral']}/v1/referrals",
                             params={"report_id": report_id},
                             headers={"Authorization": f"Bearer {scheduler}"}, timeout=10).json()
    assert [r["referral_id"] for r in referrals["items"]] == [view["referral"]["referral_id"]]


def test_self_care_report_closes_without_referral(live_stack):
    key = live_stack.kiosk_key()
    intake = live_stack.base_url["intake"]
    report_id = submit(intake, key, report_body(**SELF_CARE)).json()["report_id"]
    view = wait_for_report(intake, key, report_id)
    assert view == {**view, "status": "closed", "care_level": "self_care", "referral": None}


def test_every_service_is_ready_and_exposes_metrics(live_stack):
    for url in live_stack.base_url.values():
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
        metrics = requests.get(f"{url}/metrics", timeout=5)
        assert metrics.status_code == 200 and "clinic_http_requests_total" in metrics.text


def test_a_spanish_report_is_answered_in_spanish_and_kept_in_english_for_clinicians(live_stack):
    # Issue 18: triage writes the patient's texts in the report's language, by stable id; the
    # decision clinicians read stays English.
    key = live_stack.kiosk_key()
    intake = live_stack.base_url["intake"]
    report_id = submit(intake, key, {**report_body(**URGENT), "language": "es"}).json()["report_id"]
    view = wait_for_report(intake, key, report_id)
    assert view["language"] == "es" and view["care_level"] == "urgent"
    assert [item["text"] for item in view["advice_items"]] == view["advice"]
    assert all(item["id"] for item in view["advice_items"])
    assert "Aplique hielo en la zona dolorida durante 10-15 minutos" in " ".join(view["advice"])
    assert [reason["rule"] for reason in view["reasons"]] == ["URG-SEVERE", "URG-SUDDEN", "URG-TRAUMA"]
    assert view["reasons"][0]["text"].startswith("Un dolor de 7 o más sobre 10 es intenso")
    assert [item["safety_netting"] for item in view["advice_items"]].count(True) == 1

    decision = requests.get(f"{live_stack.base_url['triage']}/v1/decisions/{report_id}",
                            headers={"Authorization": f"Bearer {live_stack.staff_token('scheduler')}"},
                            timeout=10).json()
    assert "Ice the sore area for 10-15 minutes several times a day, especially right after an injury." \
        in decision["advice"]
