"""The /queue page shows a referral flagged as a possible duplicate (same MRN as another
open referral, another birth date) with the other referral's id and MRN, never the other
patient's name, and filters on the flag. Headless Chromium, the referral app served by a
real HTTP server, the real database (issue 12 part 1)."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.browser.steps import QUEUE_CONTEXT, sign_in
from tests.referral_support import decide, mrn, referral_for_report, staff_token

pytestmark = pytest.mark.browser


@pytest.fixture
def context_options(base_url):
    return {"base_url": base_url, **QUEUE_CONTEXT}


def test_the_queue_page_shows_the_possible_duplicate_flag_and_filters_on_it(page, referral_settings, ref_conn, now):
    from playwright.sync_api import expect

    tag = uuid.uuid4().hex[:6]
    patient = mrn()
    owner, typo, bystander = f"Rosa Owner {tag}", f"Tom Typo {tag}", f"Bea Bystander {tag}"
    made = {}
    for who, care, patient_mrn, born in ((owner, "specialist", patient, "1991-04-02"),
                                         (typo, "urgent", patient.lower(), "1985-07-30"),
                                         (bystander, "specialist", mrn(), "1991-04-02")):
        report_id = decide(ref_conn, care, patient_mrn, now, name=who, birth_date=born)
        made[who] = {"report_id": report_id, "referral_id": referral_for_report(ref_conn, report_id)["referral_id"]}

    sign_in(page, staff_token(referral_settings, "scheduler"), heading=False)

    # Other tests' referrals share the queue: find ours by report id (any linked report).
    def show(who: str | None) -> None:
        page.get_by_label("Report id").fill(made[who]["report_id"] if who else "")
        page.get_by_role("button", name="Apply").click()

    def rows(who: str):
        return page.locator("#queue-body tr", has_text=who)

    page.get_by_label("Status").select_option("")
    show(typo)
    expect(rows(typo)).to_have_count(1)
    marker = rows(typo).locator("[data-duplicate-of]")
    expect(marker).to_be_visible()
    expect(marker).to_have_text(f"Possible duplicate of {made[owner]['referral_id']} (MRN {patient})")
    expect(rows(typo)).not_to_contain_text(owner)  # never the other patient's name
    show(owner)
    expect(rows(owner)).to_have_count(1)
    expect(rows(owner).locator("[data-duplicate-of]")).to_have_count(0)

    # The Review filter: only flagged referrals, kept in the address (and across a reload).
    page.get_by_label("Review").select_option("possible_duplicate")
    expect(page).to_have_url(re.compile(r"review=possible_duplicate"))
    expect(page.locator("#empty")).to_be_visible()  # Rosa's referral is not flagged
    expect(page.locator("#queue-body tr")).to_have_count(0)
    show(typo)
    expect(rows(typo)).to_have_count(1)
    show(bystander)
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#queue-body tr")).to_have_count(0)
    show(None)
    shown = page.locator("#queue-body tr")
    expect(shown.first).to_be_visible()
    for i in range(shown.count()):  # every row shown carries the marker
        expect(shown.nth(i).locator("[data-duplicate-of]")).to_have_count(1)
    page.reload()
    expect(page.get_by_label("Review")).to_have_value("possible_duplicate")
    expect(shown.first.locator("[data-duplicate-of]")).to_be_visible()

    # Back to all referrals: Rosa's row shows again.
    page.get_by_label("Review").select_option("")
    show(owner)
    expect(rows(owner)).to_have_count(1)
