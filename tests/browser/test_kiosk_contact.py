"""The kiosk form's contact questions (issue 19 part 1) in Debian's Chromium, against intake's
app on a real HTTP server and the real database: an email address and a consent per channel,
a consent without its address named in the error summary (the server's 422, in the patient's
words) and linked to its box, then a report sent and stored with them."""
from __future__ import annotations

import json

import pytest

from tests.app_support import role_conn
from tests.browser.steps import KIOSK_SCREEN, fill_contact, fill_self_care_report, open_page, serving
from tests.intake_support import kiosk_report_ids, new_kiosk

pytestmark = pytest.mark.browser

TEXT_ME = "Text me about my appointment"
EMAIL_ME = "Email me about my appointment"
CONSENT_QUESTION = "Messages about your appointment (optional)"


@pytest.fixture(scope="module")
def kiosk_url(intake_settings):
    from services.intake.app import create_app

    with serving(create_app(intake_settings), name="kiosk-contact-server") as url:
        yield url + "/kiosk"


@pytest.fixture
def kiosk(intake_settings):
    return new_kiosk(intake_settings)


@pytest.fixture
def page(browser, kiosk):
    # The key as setup stores it, and every CSP violation kept (runs before the page's scripts).
    script = f"""
    window.localStorage.setItem("clinic.kioskKey", {json.dumps(kiosk.key)});
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective));
    """
    context, page = open_page(browser, init_script=script, viewport=KIOSK_SCREEN, timezone_id="UTC")
    yield page
    assert page.evaluate("window.__cspViolations") == []
    context.close()


def stored_patients(intake_settings, kiosk) -> list[dict]:
    with role_conn(intake_settings) as conn:
        return [conn.execute("SELECT patient FROM intake.reports WHERE report_id = %s", (report_id,)).fetchone()[0]
                for report_id in kiosk_report_ids(conn, kiosk)]


def test_the_contact_questions_are_labelled_for_people_and_browsers(page, kiosk_url):
    from playwright.sync_api import expect

    page.goto(kiosk_url)
    email = page.get_by_label("Email address (optional)")
    expect(email).to_have_attribute("type", "email")
    # Not "email": on a shared kiosk the browser could only suggest another patient's address.
    expect(email).to_have_attribute("autocomplete", "off")
    expect(email).to_have_attribute("inputmode", "email")
    expect(email).to_have_accessible_description("For example: name@example.com.")
    consent = page.get_by_role("group", name=CONSENT_QUESTION)
    expect(consent.get_by_role("checkbox")).to_have_count(2)
    expect(consent.get_by_role("checkbox", name=TEXT_ME)).not_to_be_checked()
    expect(consent.get_by_role("checkbox", name=EMAIL_ME)).not_to_be_checked()
    # The boxes are reached from the keyboard, and Space ticks one.
    page.get_by_label("Email address (optional)").focus()
    page.keyboard.press("Tab")
    expect(consent.get_by_role("checkbox", name=TEXT_ME)).to_be_focused()
    page.keyboard.press("Space")
    expect(consent.get_by_role("checkbox", name=TEXT_ME)).to_be_checked()


def test_a_consent_without_its_address_is_named_then_the_report_is_sent_and_stored(
        page, kiosk_url, kiosk, intake_settings):
    from playwright.sync_api import expect

    page.goto(kiosk_url)
    fill_self_care_report(page, mrn="MRN-CONTACT-1")
    fill_contact(page, email="  ana.silva@example.org ", consent=(TEXT_ME, EMAIL_ME))  # no phone
    with page.expect_response(lambda r: r.url.endswith("/v1/reports") and r.request.method == "POST") as sent:
        page.get_by_role("button", name="Send my answers").click()
    assert sent.value.status == 422  # the server's answer, shown as the form's own

    summary = page.get_by_role("alert").filter(has_text="Please check these answers")
    expect(summary).to_be_focused()
    words = f"Enter your phone number above, or untick “{TEXT_ME}”."
    link = summary.get_by_role("link", name=f"Messages about your appointment: {words}")
    expect(link).to_be_visible()
    expect(summary.get_by_role("link")).to_have_count(1)  # the email address was fine
    consent = page.get_by_role("group", name=CONSENT_QUESTION)
    expect(consent.locator(".field-error")).to_have_text(words)
    expect(consent).to_have_accessible_description(
        "Tick the ones you want. We only use your phone number or email address to tell you when your "
        "appointment is booked, moved or cancelled, or that you are on the waiting list. " + words)
    expect(consent.get_by_label(TEXT_ME)).to_have_attribute("aria-invalid", "true")
    link.click()
    expect(consent.get_by_label(TEXT_ME)).to_be_focused()
    assert stored_patients(intake_settings, kiosk) == []

    fill_contact(page, phone="+44 20 7946 0958")
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()

    patient, = stored_patients(intake_settings, kiosk)
    assert (patient["mrn"], patient["phone"], patient["email"], patient["contact_consent"]) == (
        "MRN-CONTACT-1", "+442079460958", "ana.silva@example.org", ["sms", "email"])


def test_a_bad_email_address_is_shown_next_to_its_field(page, kiosk_url, kiosk, intake_settings):
    from playwright.sync_api import expect

    page.goto(kiosk_url)
    fill_self_care_report(page, mrn="MRN-CONTACT-2")
    fill_contact(page, email="ana.silva@example", consent=(EMAIL_ME,))
    page.get_by_role("button", name="Send my answers").click()

    summary = page.get_by_role("alert").filter(has_text="Please check these answers")
    message = "Must be an email address, like name@example.com."
    expect(summary.get_by_role("link")).to_have_text([f"Email address: {message}"])
    email = page.get_by_label("Email address (optional)")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(f"For example: name@example.com. {message}")
    summary.get_by_role("link").click()
    expect(email).to_be_focused()
    assert stored_patients(intake_settings, kiosk) == []

    # Unticked and emptied: no consent, nothing to reach; sent and stored as none.
    email.fill("")
    page.get_by_role("group", name=CONSENT_QUESTION).get_by_label(EMAIL_ME).uncheck()
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    patient, = stored_patients(intake_settings, kiosk)
    assert (patient["email"], patient["contact_consent"]) == (None, [])
