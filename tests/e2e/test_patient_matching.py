"""Patient matching end to end (issue 12 part 1), through the real processes started as
`make run` starts them: a kiosk report typed with another patient's MRN (otherwise cased)
and another birth date gets a referral of its own; its kiosk view never shows the other
patient's appointment; the queue API shows it flagged, naming the other referral's id and
MRN but not the other patient's name. A report of the same patient (same MRN as compared,
same birth date) joins the open referral."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from .flow_helpers import SPECIALIST, URGENT, report_body, submit, wait_for_report

pytestmark = pytest.mark.e2e


def _body(mrn: str, birth_date: str, given_name: str, **care) -> dict:
    body = report_body(mrn=mrn, **care)
    body["patient"].update(birth_date=birth_date, given_name=given_name)
    return body


def test_another_patients_mrn_never_shows_their_appointment_and_is_flagged(live_stack):
    key = live_stack.kiosk_key()
    admin = {"Authorization": f"Bearer {live_stack.staff_token('admin')}"}
    scheduler = {"Authorization": f"Bearer {live_stack.staff_token('scheduler')}"}
    intake, referral = live_stack.base_url["intake"], live_stack.base_url["referral"]
    tag = uuid.uuid4().hex[:6]
    mrn = f"MRN-E2E-{uuid.uuid4().hex[:8].upper()}"

    # One free slot, inside the routine window and outside the urgent one.
    provider = requests.post(f"{referral}/v1/providers", headers=admin, timeout=10, json={
        "name": f"Matching Clinic {tag}", "specialty": "pain_management", "location": "Room 9"}).json()
    start = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    slot = requests.post(f"{referral}/v1/slots", headers=admin, timeout=10, json={
        "provider_id": provider["provider_id"], "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat()})
    assert slot.status_code == 201, slot.text

    owner = submit(intake, key, _body(mrn, "1991-04-02", f"Rosa{tag}", **SPECIALIST))
    assert owner.status_code == 202, owner.text
    owner_view = wait_for_report(intake, key, owner.json()["report_id"])
    assert owner_view["status"] == "referred"
    appointment = owner_view["referral"]["appointment"]
    assert appointment is not None

    # Another patient types Rosa's MRN (lower case, spaces around) with their own birth date.
    typo = submit(intake, key, _body(f"  {mrn.lower()} ", "1985-07-30", f"Tom{tag}", **URGENT))
    assert typo.status_code == 202, typo.text
    typo_view = wait_for_report(intake, key, typo.json()["report_id"])
    assert typo_view["status"] == "waitlisted"
    assert typo_view["referral"]["referral_id"] != owner_view["referral"]["referral_id"]
    assert typo_view["referral"]["appointment"] is None
    shown = json.dumps(typo_view)
    for secret in (appointment["slot_id"], appointment["start"], owner_view["referral"]["referral_id"]):
        assert secret not in shown

    # Rosa's referral is untouched: still routine, still her slot, still one report.
    owner_again = requests.get(f"{intake}/v1/reports/{owner.json()['report_id']}",
                               headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
    assert owner_again["referral"] == owner_view["referral"]

    flagged = requests.get(f"{referral}/v1/referrals", headers=scheduler, timeout=10,
                           params={"review": "possible_duplicate", "report_id": typo.json()["report_id"]}).json()
    (item,) = flagged["items"]
    assert item["possible_duplicate_of"] == {"referral_id": owner_view["referral"]["referral_id"], "mrn": mrn}
    assert f"Rosa{tag}" not in json.dumps(item)
    not_flagged = requests.get(f"{referral}/v1/referrals", headers=scheduler, timeout=10,
                               params={"review": "possible_duplicate",
                                       "report_id": owner.json()["report_id"]}).json()
    assert not_flagged["items"] == []

    # Rosa herself, typed in full-width characters: the same patient, linked and raised.
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in mrn)
    again = submit(intake, key, _body(fullwidth, "1991-04-02", f"Rosa{tag}", **URGENT))
    assert again.status_code == 202, again.text
    again_view = wait_for_report(intake, key, again.json()["report_id"],
                                 until=lambda r: r["referral"] is not None)
    assert again_view["referral"]["referral_id"] == owner_view["referral"]["referral_id"]
    assert again_view["referral"]["priority"] == "urgent"
