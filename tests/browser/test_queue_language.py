"""The /queue page says which patients to phone in Spanish (issue 18): beside the name, in
words ("Speaks Spanish (Español)", the Spanish word marked lang="es"), never by colour alone;
English patients carry no tag; the contact dialog says it too; the row passes axe."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.browser.axe_support import SCAN_CONTEXT, assert_no_violations
from tests.browser.steps import QUEUE_CONTEXT, sign_in
from tests.referral_support import decide, mrn, patient_message_event, referral_for_report, staff_token, tell

pytestmark = pytest.mark.browser


@pytest.fixture
def context_options(base_url):
    # bypass_csp: axe is injected into the page (axe_support)
    return {"base_url": base_url, **QUEUE_CONTEXT, **SCAN_CONTEXT}


@pytest.fixture
def patients(ref_conn, now):
    """Sofía (her report in Spanish, an SMS that failed: contact needed) and Tom (English)."""
    tag = uuid.uuid4().hex[:6]
    made = {}
    for key, name, language, at in (("sofia", f"Sofía Ruiz {tag}", "es", now),
                                     ("tom", f"Tom English {tag}", None, now + timedelta(minutes=1))):
        report_id = decide(ref_conn, "urgent", mrn(), at, name=name, language=language)
        made[key] = {"name": name, "report_id": report_id,
                     "referral_id": referral_for_report(ref_conn, report_id)["referral_id"]}
    tell(ref_conn, patient_message_event(made["sofia"]["referral_id"], status="failed", channel="sms"))
    return made


def show_report(page, report_id: str) -> None:
    page.get_by_label("Status").select_option("")
    page.get_by_label("Report id").fill(report_id)
    page.get_by_role("button", name="Apply").click()


def test_a_spanish_speaking_patient_is_marked_in_words_with_lang_es(page, referral_settings, patients):
    from playwright.sync_api import expect

    sofia, tom = patients["sofia"], patients["tom"]
    sign_in(page, staff_token(referral_settings, "scheduler"))

    show_report(page, sofia["report_id"])
    row = page.locator("#queue-body tr", has_text=sofia["name"])
    expect(row).to_have_count(1)
    tag = row.locator('[data-patient-language="es"]')
    expect(tag).to_have_text("Speaks Spanish (Español)")
    spanish = tag.locator('[lang="es"]')
    expect(spanish).to_have_text("Español")
    # beside the name, in the patient's cell
    expect(row.locator("td").nth(1)).to_contain_text(f"{sofia['name']}Speaks Spanish (Español)")
    assert_no_violations(page, "queue with a Spanish-speaking patient")

    # The scheduler about to phone her is told in the dialog too.
    row.get_by_role("button", name=f"Mark contacted: {sofia['name']}").click()
    dialog = page.get_by_role("dialog", name="Mark patient contacted")
    expect(dialog).to_contain_text("speaks Spanish")
    dialog.get_by_role("button", name="Close").click()

    show_report(page, tom["report_id"])
    english = page.locator("#queue-body tr", has_text=tom["name"])
    expect(english).to_have_count(1)
    expect(english.locator("[data-patient-language]")).to_have_count(0)
    expect(english.locator("[lang]")).to_have_count(0)
    expect(english).not_to_contain_text("Speaks")
