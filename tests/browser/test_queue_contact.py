"""The /queue page shows what each patient was told and who must be phoned (issue 19): the
messages summary, the "Contact needed — phone ..." marker, the Contact filter, and "Mark
contacted" (by keyboard, with its confirmation). Headless Chromium, the referral app served by
a real HTTP server, the real database; messages go in through the worker's own handler."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser.steps import QUEUE_CONTEXT, sign_in
from tests.referral_support import decide, mrn, patient_message_event, referral_for_report, staff_token, tell

pytestmark = pytest.mark.browser

PHONE = "+441632960555"


@pytest.fixture
def context_options(base_url):
    return {"base_url": base_url, **QUEUE_CONTEXT}


def test_a_scheduler_sees_who_needs_a_call_filters_on_it_and_marks_the_patient_contacted(
        page, referral_settings, ref_conn, now):
    from playwright.sync_api import expect

    tag = uuid.uuid4().hex[:6]
    carla, sam = f"Carla Call {tag}", f"Sam Sent {tag}"
    made = {}
    for who in (carla, sam):
        report_id = decide(ref_conn, "specialist", mrn(), now, name=who)
        made[who] = {"report_id": report_id, "referral_id": referral_for_report(ref_conn, report_id)["referral_id"]}
    # Yesterday: the page's "Mark contacted" (the server's clock) comes after the messages.
    sent_at = (datetime.now(UTC) - timedelta(days=1)).replace(hour=9, minute=31, second=0, microsecond=0)
    for who, sms in ((carla, "failed"), (sam, "sent")):
        referral_id, report_id = made[who]["referral_id"], made[who]["report_id"]
        tell(ref_conn, patient_message_event(referral_id, report_id=report_id, channel="email", status="sent",
                                             change="waitlisted", at=sent_at))
        tell(ref_conn, patient_message_event(referral_id, report_id=report_id, channel="sms", status=sms,
                                             change="waitlisted", at=sent_at + timedelta(minutes=1),
                                             callback_phone=PHONE if sms == "failed" else None))

    sign_in(page, staff_token(referral_settings, "scheduler"), heading=False)

    # Other tests' referrals share the queue: find ours by report id.
    def show(who: str) -> None:
        page.get_by_label("Report id").fill(made[who]["report_id"])
        page.get_by_role("button", name="Apply").click()

    def row(who: str):
        return page.locator("#queue-body tr", has_text=who)

    show(carla)
    expect(row(carla)).to_have_count(1)
    expect(row(carla).locator("[data-contact-needed]")).to_have_text(f"Contact needed — phone {PHONE}")
    expect(row(carla)).to_contain_text("Email sent 09:31 · SMS failed 09:32")
    show(sam)
    expect(row(sam)).to_contain_text("Email sent 09:31 · SMS sent 09:32")
    expect(row(sam).locator("[data-contact-needed]")).to_have_count(0)
    expect(row(sam).get_by_role("button", name=re.compile("^Mark contacted"))).to_have_count(0)

    # The Contact filter, kept in the address.
    page.get_by_label("Contact", exact=True).select_option("true")
    expect(page).to_have_url(re.compile(r"contact_needed=true"))
    expect(page.locator("#empty")).to_be_visible()  # Sam needs no call
    show(carla)
    expect(row(carla)).to_have_count(1)

    # Mark contacted, by keyboard: Enter opens the confirmation, Escape closes it and gives the
    # focus back; the second time the note is typed and confirmed.
    button = row(carla).get_by_role("button", name=f"Mark contacted: {carla}")
    button.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Mark patient contacted")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Phone: {PHONE}")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Note (optional)").fill("Told her she is on the waiting list.")
    dialog.get_by_role("button", name="Mark contacted").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text(f"{carla} marked contacted.")
    expect(page.locator("#empty")).to_be_visible()  # no longer needs a call: out of the filtered queue

    page.get_by_label("Contact", exact=True).select_option("")
    expect(row(carla)).to_have_count(1)
    expect(row(carla).locator("[data-contact-needed]")).to_have_count(0)
    expect(row(carla)).to_contain_text("Contacted ")
    assert ref_conn.execute("SELECT contact_needed, contacted_at IS NOT NULL FROM referral.referrals"
                            " WHERE referral_id = %s", (made[carla]["referral_id"],)).fetchone() == (False, True)
    assert ref_conn.execute("SELECT note FROM referral.patient_contacts WHERE referral_id = %s",
                            (made[carla]["referral_id"],)).fetchall() == [("Told her she is on the waiting list.",)]
