"""Kiosk setup in headless Chromium against the live stack: saving or removing the kiosk key
needs a scheduler's or an admin's staff token, checked by the intake service; the patient
screen does not link to the setup page."""
from __future__ import annotations

import pytest

from tests.browser.steps import staff_sign_in

pytestmark = pytest.mark.browser

KEY_STORAGE = "clinic.kioskKey"


@pytest.fixture
def setup_url(live_stack):
    return live_stack.base_url["intake"] + "/kiosk/setup"


def stored_key(page):
    return page.evaluate(f"window.localStorage.getItem({KEY_STORAGE!r})")


def test_the_patient_screen_has_no_link_to_the_setup_page(page, live_stack):
    from playwright.sync_api import expect

    page.goto(live_stack.base_url["intake"] + "/kiosk")
    expect(page.get_by_role("heading", name="This kiosk is not set up")).to_be_visible()
    assert page.locator("a[href*='setup']").count() == 0
    assert "/kiosk/setup" not in page.content()


def test_the_key_form_needs_a_staff_token_checked_by_the_server(page, live_stack, setup_url):
    from playwright.sync_api import expect

    kiosk_key = live_stack.kiosk_key()
    page.goto(setup_url)
    expect(page.get_by_label("Kiosk key")).to_be_hidden()

    staff_sign_in(page, "staff_not-a-real-token")
    expect(page.get_by_text("This staff token was not accepted")).to_be_visible()
    staff_sign_in(page, kiosk_key)  # a kiosk key is not a staff token
    expect(page.get_by_text("This staff token was not accepted")).to_be_visible()
    expect(page.get_by_label("Kiosk key")).to_be_hidden()
    assert stored_key(page) is None

    staff_sign_in(page, live_stack.staff_token("scheduler"))
    page.get_by_label("Kiosk key").fill(kiosk_key)
    page.get_by_role("button", name="Check and save the key").click()
    expect(page.get_by_text("Saved. This kiosk is set up.")).to_be_visible()
    assert stored_key(page) == kiosk_key
    # The staff member is signed out of the setup again: removing needs the token anew.
    expect(page.get_by_role("button", name="Remove the key from this kiosk")).to_be_hidden()
    expect(page.get_by_label("Your staff token")).to_be_visible()

    staff_sign_in(page, live_stack.staff_token("admin"))
    page.get_by_role("button", name="Remove the key from this kiosk").click()
    expect(page.get_by_text("The key was removed.")).to_be_visible()
    assert stored_key(page) is None


def test_a_token_revoked_meanwhile_saves_nothing(page, live_stack, setup_url):
    from playwright.sync_api import expect

    from services.admin.credentials import staff_revoke

    page.goto(setup_url)
    staff_sign_in(page, live_stack.staff_token("scheduler", name="setup-leaver"))
    page.get_by_label("Kiosk key").fill(live_stack.kiosk_key())
    staff_revoke(live_stack.settings(), "setup-leaver")
    page.get_by_role("button", name="Check and save the key").click()
    expect(page.get_by_text("This staff token was not accepted")).to_be_visible()
    assert stored_key(page) is None
