"""The kiosk form in a real headless Chromium, against the live stack (intake, triage and
referral processes over real PostgreSQL and Kafka): a patient fills it in and sees the outcome.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser.steps import KIOSK_SCREEN, OUTCOME_TIMEOUT_MS, fill_self_care_report, set_up_kiosk

pytestmark = pytest.mark.browser


@pytest.fixture
def context_options():
    return {"viewport": KIOSK_SCREEN}


@pytest.fixture
def kiosk_url(live_stack):
    return live_stack.base_url["intake"] + "/kiosk"


def test_a_patient_sends_a_report_and_sees_the_outcome(page, live_stack, kiosk_url):
    from playwright.sync_api import expect

    page.goto(kiosk_url)
    expect(page.get_by_role("heading", name="This kiosk is not set up")).to_be_visible()

    set_up_kiosk(page, kiosk_url, live_stack.kiosk_key(), live_stack.staff_token())
    fill_self_care_report(page)
    page.get_by_role("button", name="Send my answers").click()

    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    expect(page.locator("#outcome-care-level")).to_have_text("Care for it at home", timeout=OUTCOME_TIMEOUT_MS)
    expect(page.locator("#outcome-advice li").first).to_be_visible()
    expect(page.locator("#outcome-status")).to_have_text("You do not need an appointment now.")

    # The next patient gets an empty form: nothing of this one lingers.
    page.get_by_role("button", name="Start a new report").click()
    expect(page.get_by_label("Medical record number (MRN)")).to_have_value("")
    expect(page.locator("#outcome-advice li")).to_have_count(0)


def test_field_errors_appear_next_to_their_fields(page, live_stack, kiosk_url):
    from playwright.sync_api import expect

    set_up_kiosk(page, kiosk_url, live_stack.kiosk_key(), live_stack.staff_token())
    future = datetime.now(UTC).date() + timedelta(days=30)
    fill_self_care_report(page, birth_date=future, location=None)
    page.get_by_role("button", name="Send my answers").click()

    summary = page.get_by_role("alert").filter(has_text="Please check these answers")
    expect(summary).to_be_focused()
    locations = page.get_by_role("group", name="Where does it hurt?")
    expect(locations.locator(".field-error")).to_have_text("Choose at least one place where it hurts.")
    expect(locations.get_by_label("Groin")).to_have_attribute("aria-invalid", "true")
    expect(locations).to_have_accessible_description(
        "Choose every place that hurts. Choose at least one place where it hurts.")
    birth = page.get_by_role("group", name="Date of birth")
    expect(birth.locator(".field-error")).to_have_text("This date cannot be in the future.")
    expect(page.get_by_role("group", name="Which side?").locator(".field-error")).to_be_hidden()

    # The summary's links take the patient to the field.
    summary.get_by_role("link", name="Where it hurts: Choose at least one place where it hurts.").click()
    expect(locations.get_by_label("Groin")).to_be_focused()
    expect(page.get_by_role("heading", name="Thank you")).to_be_hidden()


def test_a_failed_send_is_retried_with_the_same_idempotency_key(page, live_stack, kiosk_url):
    from playwright.sync_api import expect

    set_up_kiosk(page, kiosk_url, live_stack.kiosk_key(), live_stack.staff_token())
    sent = []

    def service_unavailable_once(route):
        sent.append(route.request.headers.get("idempotency-key"))
        if len(sent) == 1:
            route.fulfill(status=503, content_type="application/json",
                          body=json.dumps({"error": {"code": "unavailable", "message": "Retry shortly."}}))
        else:
            route.continue_()

    page.route("**/v1/reports", service_unavailable_once)
    fill_self_care_report(page)
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_text("We could not send your answers just now. Please try again.")).to_be_visible()
    page.get_by_role("button", name="Try again").click()

    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    assert len(sent) == 2 and sent[0] == sent[1] and sent[0]


def test_an_unattended_form_is_cleared(page, live_stack, kiosk_url):
    """Issue 18: warned after 90 s without use, cleared at 2 minutes."""
    from playwright.sync_api import expect

    page.clock.install()
    set_up_kiosk(page, kiosk_url, live_stack.kiosk_key(), live_stack.staff_token())
    page.get_by_label("First name").fill("Ana")
    page.clock.fast_forward("01:31")
    expect(page.get_by_role("dialog", name="Are you still there?")).to_be_visible()
    expect(page.get_by_label("First name")).to_have_value("Ana")
    page.clock.fast_forward("00:30")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.get_by_label("First name")).to_have_value("")


def test_the_outcome_screen_clears_itself(page, live_stack, kiosk_url):
    from playwright.sync_api import expect

    page.clock.install()
    set_up_kiosk(page, kiosk_url, live_stack.kiosk_key(), live_stack.staff_token())
    fill_self_care_report(page)
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    # Issue 18: the same warning as the form's at 90 s, then cleared at 2 minutes.
    page.clock.fast_forward("01:31")
    expect(page.get_by_role("dialog", name="Are you still there?")).to_be_visible()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    page.clock.fast_forward("00:30")
    expect(page.get_by_role("heading", name="Tell us about your hip pain")).to_be_visible()
    expect(page.get_by_role("heading", name="Thank you")).to_be_hidden()
    expect(page.get_by_label("Medical record number (MRN)")).to_have_value("")
