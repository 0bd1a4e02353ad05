"""Steps the browser tests share: serving an app on a real HTTP server, opening a page, signing
in to the queue page, setting up a kiosk and filling in its form."""
from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, date, datetime, timedelta

from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# The queue pages' browser context: dates shown in UTC, in British English.
QUEUE_CONTEXT = {"timezone_id": "UTC", "locale": "en-GB"}
KIOSK_SCREEN = {"width": 1080, "height": 1920}  # portrait kiosk
# The outcome travels intake -> Kafka -> triage -> Kafka -> intake; generous for a busy CI box.
OUTCOME_TIMEOUT_MS = 30_000
DEFAULT_TIMEOUT_MS = 10_000


# -- servers and pages ---------------------------------------------------------------------
@contextlib.contextmanager
def serving(app, name: str | None = None):
    """Serve a service's Flask app on 127.0.0.1 (a free port) in a thread; yield its URL.
    On leaving: stop the server and close the app's connection pool."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["clinic"].pool.close()


def poll_page(page, function: str, timeout_s: float = 5.0):
    """The value of `function` (a JavaScript function of no arguments) in the page, evaluated
    again until it is truthy or `timeout_s` has passed. page.wait_for_function would poll by
    evaluating a string in the page, which the pages' CSP (no 'unsafe-eval') refuses whenever
    the first look is not already true."""
    deadline = time.monotonic() + timeout_s
    value = page.evaluate(function)
    while not value and time.monotonic() < deadline:
        page.wait_for_timeout(50)
        value = page.evaluate(function)
    return value


def new_page(context):
    """A new page of the context, with the tests' default timeout."""
    page = context.new_page()
    page.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return page


def open_page(browser, *, init_script: str | None = None, **context_options):
    """A fresh browser context (its own cookies and localStorage) and a page in it."""
    context = browser.new_context(**context_options)
    if init_script:
        context.add_init_script(init_script)
    return context, new_page(context)


# -- the queue page ------------------------------------------------------------------------
def sign_in(page, token: str, url: str = "/queue", *, heading: bool = True, sign_out: bool = True):
    """Open the queue page and sign in with a staff token; wait for the queue's heading and its
    Sign out button unless told not to. Returns the response to opening the page."""
    response = page.goto(url)
    page.get_by_label("Staff token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    if heading:
        page.get_by_role("heading", name="Referral queue").wait_for()
    if sign_out:
        page.get_by_role("button", name="Sign out").wait_for()
    return response


# -- the kiosk -----------------------------------------------------------------------------
def staff_sign_in(page, token: str) -> None:
    """Sign in to /kiosk/setup (already open) with a staff token."""
    page.get_by_label("Your staff token").fill(token)
    page.get_by_role("button", name="Continue").click()


def set_up_kiosk(page, kiosk_url: str, key: str, staff_token: str) -> None:
    """What staff do once per device: sign in with their staff token on /kiosk/setup, paste the key."""
    page.goto(kiosk_url + "/setup")
    staff_sign_in(page, staff_token)
    page.get_by_label("Kiosk key").fill(key)
    page.get_by_role("button", name="Check and save the key").click()
    page.get_by_text("Saved. This kiosk is set up.").wait_for()
    page.get_by_role("link", name="Open the kiosk form").click()
    page.get_by_role("heading", name="Tell us about your hip pain").wait_for()


def choose(page, question: str, answer: str) -> None:
    page.get_by_role("group", name=question).get_by_label(answer, exact=True).check()


def fill_date(page, question: str, day: date) -> None:
    group = page.get_by_role("group", name=question)
    group.get_by_label("Day").fill(str(day.day))
    group.get_by_label("Month").fill(str(day.month))
    group.get_by_label("Year").fill(str(day.year))


def fill_self_care_report(page, *, birth_date: date | None = None, location: str | None = "Outside of the hip",
                          mrn: str = "MRN-KIOSK-1") -> None:
    """The rules' worked example 1: a runner, outer hip, severity 4, gradual, 5 days, nothing
    tried at home: care at home, no referral."""
    today = datetime.now(UTC).date()
    page.get_by_label("Medical record number (MRN)").fill(mrn)
    page.get_by_label("First name").fill("Ana")
    page.get_by_label("Last name").fill("Silva")
    fill_date(page, "Date of birth", birth_date or today.replace(year=today.year - 30))
    page.get_by_label("Your main sport or activity").fill("running")
    choose(page, "Is it a high-impact sport, with running or jumping?", "Yes")
    if location:
        page.get_by_label(location).check()
    choose(page, "Which side?", "Left hip")
    choose(page, "How bad is the pain?", "4")
    choose(page, "How did the pain start?", "Gradually, over time")
    fill_date(page, "When did the pain start?", today - timedelta(days=5))
    choose(page, "Did a fall, a collision or a blow to the hip come before the pain?", "No")
    choose(page, "Does your hip lock or catch?", "No")
    choose(page, "Does your hip give way?", "No")
    choose(page, "Have running, walking or climbing stairs been hard for weeks?", "No")


def fill_contact(page, *, phone: str | None = None, email: str | None = None, consent: tuple[str, ...] = ()) -> None:
    """The contact questions: the addresses given, and a tick for each consent named by its words
    ("Text me about my appointment", "Email me about my appointment")."""
    if phone is not None:
        page.get_by_label("Phone number (optional)").fill(phone)
    if email is not None:
        page.get_by_label("Email address (optional)").fill(email)
    group = page.get_by_role("group", name="Messages about your appointment (optional)")
    for words in consent:
        group.get_by_label(words, exact=True).check()
