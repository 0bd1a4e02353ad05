"""The kiosk and queue pages work under the Content-Security-Policy every answer carries
(no inline script or style, only their own origin): driven in Debian's Chromium, with every
CSP violation (securitypolicyviolation events and console reports) collected and none allowed."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.serving import make_server

from tests.intake_support import new_kiosk
from tests.referral_support import staff_token

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Runs before any page script (Playwright injects it outside the page's CSP).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def urls(intake_settings, referral_settings):
    from services.intake.app import create_app as intake_app
    from services.referral.app import create_app as referral_app

    apps = [intake_app(intake_settings), referral_app(referral_settings)]
    servers = [serve(app) for app in apps]
    yield {"intake": servers[0][2], "referral": servers[1][2]}
    for (server, thread, _url), app in zip(servers, apps):
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["clinic"].pool.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1080, "height": 1920}, timezone_id="UTC")
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.set_default_timeout(10_000)
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
    today = datetime.now(UTC).date()
    page.get_by_label("Medical record number (MRN)").fill("MRN-CSP-1")
    page.get_by_label("First name").fill("Ana")
    page.get_by_label("Last name").fill("Silva")
    for question, day in (("Date of birth", today.replace(year=today.year - 30)),
                          ("When did the pain start?", today - timedelta(days=5))):
        group = page.get_by_role("group", name=question)
        group.get_by_label("Day").fill(str(day.day))
        group.get_by_label("Month").fill(str(day.month))
        group.get_by_label("Year").fill(str(day.year))
    page.get_by_label("Your main sport or activity").fill("running")
    for question, answer in (("Is it a high-impact sport, with running or jumping?", "Yes"),
                             ("Which side?", "Left hip"), ("How bad is the pain?", "4"),
                             ("How did the pain start?", "Gradually, over time"),
                             ("Did a fall, a collision or a blow to the hip come before the pain?", "No"),
                             ("Does your hip lock or catch?", "No"), ("Does your hip give way?", "No"),
                             ("Have running, walking or climbing stairs been hard for weeks?", "No")):
        page.get_by_role("group", name=question).get_by_label(answer, exact=True).check()
    page.get_by_label("Outside of the hip").check()
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
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.ran") is None


def test_the_queue_page_signs_in_and_shows_the_queue_under_its_csp(page, urls, referral_settings):
    page, console = page
    page.goto(urls["referral"] + "/queue")
    page.get_by_label("Staff token").fill(staff_token(referral_settings, "scheduler"))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Referral queue").wait_for()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state("networkidle")
    assert_no_csp_violation(page, console)
