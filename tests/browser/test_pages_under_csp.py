"""The kiosk and queue pages work under the Content-Security-Policy every answer carries
(no inline script or style, only their own origin): driven in Debian's Chromium, with every
CSP violation (securitypolicyviolation events and console reports) collected and none allowed."""
from __future__ import annotations

import contextlib

import pytest

from tests.browser.steps import KIOSK_SCREEN, fill_self_care_report, open_page, poll_page, serving, sign_in
from tests.intake_support import new_kiosk
from tests.referral_support import staff_token

pytestmark = pytest.mark.browser

# Runs before any page script (Playwright injects it outside the page's CSP).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture(scope="module")
def urls(intake_settings, referral_settings):
    from services.intake.app import create_app as intake_app
    from services.referral.app import create_app as referral_app

    with contextlib.ExitStack() as servers:
        yield {"intake": servers.enter_context(serving(intake_app(intake_settings))),
               "referral": servers.enter_context(serving(referral_app(referral_settings)))}


@pytest.fixture
def page(browser):
    """The page, with the console messages it logs."""
    context, page = open_page(browser, init_script=WATCH_CSP, viewport=KIOSK_SCREEN, timezone_id="UTC")
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    yield page, console
    context.close()


def assert_no_csp_violation(page, console: list[str]) -> None:
    assert page.evaluate("window.__cspViolations") == []
    assert [line for line in console if "Content Security Policy" in line or "Content-Security-Policy" in line] == []


def test_the_kiosk_page_sends_a_report_under_its_csp(page, urls, intake_settings):
    from playwright.sync_api import expect

    page, console = page
    key = new_kiosk(intake_settings).key
    page.goto(urls["intake"] + "/kiosk")
    page.evaluate("key => window.localStorage.setItem('clinic.kioskKey', key)", key)
    page.reload()
    page.get_by_role("heading", name="Tell us about your hip pain").wait_for()
    fill_self_care_report(page, mrn="MRN-CSP-1")
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    assert_no_csp_violation(page, console)


def test_the_kiosk_setup_page_runs_under_its_csp(page, urls):
    page, console = page
    page.goto(urls["intake"] + "/kiosk/setup")
    page.wait_for_load_state("networkidle")
    assert page.locator("script[src]").count() >= 1
    assert_no_csp_violation(page, console)
    # The watch itself works: an inline script is blocked and reported.
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                  " document.body.appendChild(s); }")
    assert poll_page(page, "() => window.__cspViolations.length")
    assert page.evaluate("window.ran") is None


def test_the_queue_page_signs_in_and_shows_the_queue_under_its_csp(page, urls, referral_settings):
    page, console = page
    sign_in(page, staff_token(referral_settings, "scheduler"), urls["referral"] + "/queue", sign_out=False)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state("networkidle")
    assert_no_csp_violation(page, console)
