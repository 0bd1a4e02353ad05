"""Issue 19 end to end, through the processes `make run` starts: a kiosk report with consent
ends as an email in the stack's mail sink and an SMS at its gateway stand-in, a cancellation
by the clinic is told too, and the schedulers' queue shows who was told what; a patient
with no consented channel is on the "contact needed" list with the number to call."""
from __future__ import annotations

import email
import json
import time
import uuid
from email import policy
from pathlib import Path

import pytest
import requests

from .flow_helpers import URGENT, report_body, submit, wait_for_report

pytestmark = pytest.mark.e2e

CLINICAL = ("urgent", "specialist", "self_care", "severe", "trauma", "locking", "URG-", "SPC-", "symptom")


def mails_to(state_dir: Path, address: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted((state_dir / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == address:
            found.append(message)
    return found


def texts_to(state_dir: Path, phone: str) -> list[dict]:
    path = state_dir / "sms" / "messages.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [sms for sms in map(json.loads, lines) if sms["to"] == phone]


def wait_until(what: str, probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def referral_of(live_stack, token: str, referral_id: str) -> dict:
    response = requests.get(f"{live_stack.base_url['referral']}/v1/referrals/{referral_id}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def consenting_patient() -> tuple[dict, str, str]:
    address = f"patient-{uuid.uuid4().hex[:10]}@example.org"
    phone = f"+4477009{uuid.uuid4().int % 10**5:05d}"  # as intake stores it (E.164)
    body = report_body(**URGENT)
    body["patient"].update(email=address, phone=phone, contact_consent=["email", "sms"])
    return body, address, phone


def test_a_consenting_patient_is_told_by_email_and_sms_and_the_queue_shows_it(live_stack):
    key, scheduler = live_stack.kiosk_key(), live_stack.staff_token("scheduler")
    body, address, phone = consenting_patient()
    response = submit(live_stack.base_url["intake"], key, body)
    assert response.status_code == 202, response.text
    view = wait_for_report(live_stack.base_url["intake"], key, response.json()["report_id"])
    referral = view["referral"]
    assert view["status"] in {"referred", "waitlisted"}

    [first] = wait_until("the first email", lambda: mails_to(live_stack.state_dir, address))
    if view["status"] == "referred":  # a free slot in the window: booked at once
        appointment = referral["appointment"]
        assert first["Subject"].startswith("Your appointment is booked")
        text = first.get_body(("plain",)).get_content()
        assert appointment["provider"] in text and appointment["location"] in text
        assert "Europe/London" in text  # the clinic's zone, as make run sets it
    else:
        assert first["Subject"].startswith("You are on our waiting list")
    [sms] = wait_until("the first SMS", lambda: texts_to(live_stack.state_dir, phone))
    assert len(sms["text"]) <= 160

    # The clinic cancels: the patient is told that too, once per channel.
    cancelled = requests.post(f"{live_stack.base_url['referral']}/v1/referrals/{referral['referral_id']}/cancel",
                              json={"reason": "clinic closed that day"},
                              headers={"Authorization": f"Bearer {scheduler}"}, timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    def both_emails():
        mails = mails_to(live_stack.state_dir, address)
        return mails if len(mails) == 2 else None

    mails = wait_until("the cancellation email", both_emails)
    assert mails[1]["Subject"].startswith("Your appointment is cancelled")
    wait_until("the cancellation SMS", lambda: len(texts_to(live_stack.state_dir, phone)) == 2)
    for message in mails:
        words = message.get_body(("plain",)).get_content() + message.get_body(("html",)).get_content()
        assert not [w for w in CLINICAL if w.lower() in words.lower()], words
        assert "clinic closed that day" not in words  # the scheduler's reason stays in the clinic

    # The schedulers see each message of each change as sent, and no contact needed.
    def all_sent():
        contact = referral_of(live_stack, scheduler, referral["referral_id"])["contact"]
        told = sorted((m["change"], m["channel"], m["status"]) for m in contact["messages"])
        return contact if len(told) == 4 and all(status == "sent" for *_, status in told) else None

    contact = wait_until("the queue showing four sent messages", all_sent)
    assert sorted((m["change"], m["channel"]) for m in contact["messages"]) == sorted(
        [("booked" if view["status"] == "referred" else "waitlisted", "email"),
         ("booked" if view["status"] == "referred" else "waitlisted", "sms"),
         ("cancelled", "email"), ("cancelled", "sms")])
    assert contact["needed"] is False and contact["callback_phone"] is None


def test_a_patient_without_consent_is_on_the_contact_needed_list_with_the_number_to_call(live_stack):
    key, scheduler = live_stack.kiosk_key(), live_stack.staff_token("scheduler")
    body = report_body(**URGENT)
    phone = f"+4477008{uuid.uuid4().int % 10**5:05d}"
    body["patient"]["phone"] = phone
    view = wait_for_report(live_stack.base_url["intake"], key,
                           submit(live_stack.base_url["intake"], key, body).json()["report_id"])
    referral_id = view["referral"]["referral_id"]

    def flagged():
        listed = requests.get(f"{live_stack.base_url['referral']}/v1/referrals",
                              params={"contact_needed": "true", "report_id": view["report_id"]},
                              headers={"Authorization": f"Bearer {scheduler}"}, timeout=10).json()["items"]
        return listed or None

    [item] = wait_until("the referral on the contact-needed list", flagged)
    assert item["referral_id"] == referral_id
    assert item["contact"]["needed"] is True and item["contact"]["callback_phone"] == phone
    assert [(m["channel"], m["status"]) for m in item["contact"]["messages"]] == [("phone", "not_sent")]
    assert texts_to(live_stack.state_dir, phone) == []  # no consent: nothing sent

    marked = requests.post(f"{live_stack.base_url['referral']}/v1/referrals/{referral_id}/contacted",
                           json={"note": "called, agreed to wait"},
                           headers={"Authorization": f"Bearer {scheduler}"}, timeout=10)
    assert marked.status_code == 200, marked.text
    assert marked.json()["contact"]["needed"] is False
    assert flagged() is None
