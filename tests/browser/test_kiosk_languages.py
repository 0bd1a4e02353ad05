"""The kiosk in English and Spanish (issue 18), in Debian's Chromium against the live stack:
the browser's language chooses until the patient does; a Spanish report is asked, checked and
answered in Spanish (advice, safety-netting, reasons, the appointment in the clinic's time zone)
and records its language; the next patient starts in the kiosk's own language again; the
printed summary holds what the outcome screen shows and nothing more. (The Spanish pages'
axe scans, targets and reflow are states of test_kiosk_accessibility.py.)"""
from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.browser import accessibility_states as states
from tests.browser.steps import KIOSK_SCREEN, OUTCOME_TIMEOUT_MS, new_page, serving

pytestmark = pytest.mark.browser

# A clinic whose time is not UTC's, and far enough from it that a date can differ.
CLINIC_ZONE = "America/Mexico_City"
ENGLISH_HEADING = "Tell us about your hip pain"
SPANISH_HEADING = "Cuéntenos su dolor de cadera"


@pytest.fixture(scope="module")
def clinic_kiosk(live_stack):
    """The stack's intake API and pages, served again with CLINIC_TIME_ZONE set to CLINIC_ZONE:
    the same database, so the reports it takes go through the live pipeline."""
    from services.intake.app import create_app

    settings = dataclasses.replace(live_stack.settings("intake"), clinic_time_zone=CLINIC_ZONE)
    with serving(create_app(settings), name="kiosk-in-mexico-city") as url:
        yield url + "/kiosk"


def open_kiosk(browser, kiosk_url: str, key: str, **context_options):
    """A kiosk set up with `key`, in a context with these options (e.g. the browser's locale)."""
    context = browser.new_context(**{"viewport": KIOSK_SCREEN, "timezone_id": "UTC", **context_options})
    page = new_page(context)
    page.goto(kiosk_url)
    page.evaluate("key => window.localStorage.setItem('clinic.kioskKey', key)", key)
    page.reload()
    page.locator("#report-form:not([hidden])").wait_for()
    return context, page


def list_texts(page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_inner_texts()]


def test_the_browsers_language_chooses_until_the_patient_does(browser, live_stack):
    kiosk_url = live_stack.base_url["intake"] + "/kiosk"
    context, page = open_kiosk(browser, kiosk_url, live_stack.kiosk_key(), locale="es-MX")
    try:
        from playwright.sync_api import expect

        expect(page.get_by_role("heading", name=SPANISH_HEADING)).to_be_visible()
        assert page.locator("html").get_attribute("lang") == "es"
        chooser = page.get_by_role("navigation", name="Idioma")
        expect(chooser.get_by_role("link", name="Español")).to_have_attribute("aria-current", "true")
        english = chooser.get_by_role("link", name="English")
        expect(english).to_have_attribute("lang", "en")   # read out in English, whatever the page's language
        english.click()
        expect(page.get_by_role("heading", name=ENGLISH_HEADING)).to_be_visible()
        assert page.locator("html").get_attribute("lang") == "en"
        expect(page.get_by_role("navigation", name="Language").get_by_role("link", name="English")) \
            .to_have_attribute("aria-current", "true")
    finally:
        context.close()


def test_a_spanish_report_is_asked_and_answered_in_spanish(browser, live_stack, clinic_kiosk):
    from babel.dates import format_date
    from playwright.sync_api import expect

    states.add_slots_soon(live_stack.base_url["referral"], live_stack.staff_token("admin"), days=7, count=2)
    key = live_stack.kiosk_key()
    context, page = open_kiosk(browser, clinic_kiosk, key)   # an English browser
    try:
        page.get_by_role("link", name="Español").click()   # the patient's choice, on the first screen
        expect(page.get_by_role("heading", name=SPANISH_HEADING)).to_be_visible()
        expect(page.get_by_role("group", name="¿Se le bloquea o se le traba la cadera?")).to_be_visible()
        states.fill_by_ids(page, mrn="MRN-ES-1", joint_locking="yes")
        page.get_by_role("button", name="Enviar mis respuestas").click()

        expect(page.get_by_role("heading", name="Gracias")).to_be_focused()
        expect(page.locator("#outcome-care-level")).to_have_text("Consulte a un especialista",
                                                                 timeout=OUTCOME_TIMEOUT_MS)
        expect(page.locator("#outcome-status")).to_have_text("Su cita está reservada.", timeout=OUTCOME_TIMEOUT_MS)
        assert page.get_by_role("navigation", name="Idioma").is_hidden()   # the report's language is settled
        advice = " ".join(list_texts(page, "#outcome-advice li"))
        assert "Aplique hielo en la zona dolorida" in advice and "Ice" not in advice
        expect(page.get_by_role("heading", name="Cuándo pedir ayuda antes")).to_be_visible()
        assert len(list_texts(page, "#outcome-safety-list li")) == 1
        (reason,) = list_texts(page, "#outcome-reason-list li")
        assert "cadera que se bloquea" in reason, reason

        report_id = page.evaluate("() => performance.getEntriesByType('resource')"
                                  ".map((e) => e.name).find((n) => /\\/v1\\/reports\\/[0-9a-f-]{36}$/.test(n))")
        view = requests.get(report_id, headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
        assert view["language"] == "es" and view["referral"]["status"] == "booked"
        appointment = view["referral"]["appointment"]
        start, end = (datetime.fromisoformat(appointment[edge]).astimezone(ZoneInfo(CLINIC_ZONE))
                      for edge in ("start", "end"))
        # CLDR's full Spanish date (Babel's copy, not the browser's), hours in the clinic's zone
        expected = f"{format_date(start.date(), 'full', locale='es')}, de {start:%H:%M} a {end:%H:%M}"
        expect(page.locator("#appointment-when")).to_have_text(expected)

        # the next patient starts in the kiosk's own language, with nothing of this one
        page.get_by_role("button", name="Empezar un nuevo registro").click()
        expect(page.get_by_role("heading", name=ENGLISH_HEADING)).to_be_visible()
        expect(page.locator("#patient-mrn")).to_have_value("")
        assert "lang=" not in page.url
    finally:
        context.close()


def test_spanish_mistakes_are_said_in_spanish_never_in_the_apis_english(browser, live_stack):
    from playwright.sync_api import expect

    kiosk_url = live_stack.base_url["intake"] + "/kiosk?lang=es"
    context, page = open_kiosk(browser, kiosk_url, live_stack.kiosk_key())
    try:
        page.locator("#patient-email").fill("lucia@ejemplo")
        page.locator("#patient-phone").fill("12")
        page.locator("#patient-contact_consent-email").check()
        page.get_by_role("button", name="Enviar mis respuestas").click()
        summary = page.get_by_role("alert").filter(has_text="Revise estas respuestas, por favor")
        expect(summary).to_be_focused()
        links = list_texts(page, "#error-summary-list a")
        assert "Correo electrónico: Escriba un correo electrónico, como nombre@ejemplo.com." in links
        assert "Número de teléfono: Escriba un número de teléfono con el código del país, " \
               "por ejemplo +1 555 0100." in links
        assert "Nombre: Responda a esta pregunta, por favor." in links
        assert "Dónde duele: Elija al menos un lugar donde le duela." in links
        api_english = [text for text in links if any(word in text for word in ("Must", "field", "Not a valid"))]
        assert api_english == []
        expect(page.locator("#send")).to_have_text("Enviar mis respuestas")
    finally:
        context.close()


def test_the_printed_summary_holds_what_the_screen_shows_and_nothing_more(browser, live_stack, tmp_path):
    from playwright.sync_api import expect

    context, page = open_kiosk(browser, live_stack.base_url["intake"] + "/kiosk?lang=es", live_stack.kiosk_key())
    try:
        states.fill_by_ids(page, mrn="MRN-ES-PRINT")
        page.get_by_role("button", name="Enviar mis respuestas").click()
        expect(page.locator("#outcome-care-level")).to_have_text("Cuídese en casa", timeout=OUTCOME_TIMEOUT_MS)
        printing = page.get_by_role("button", name="Imprimir este resumen")
        page.evaluate("() => { window.printed = 0; window.print = () => { window.printed += 1; }; }")
        printing.click()
        assert page.evaluate("window.printed") == 1

        def visible_lines() -> list[str]:
            return [line.strip() for line in page.locator("main").inner_text().splitlines() if line.strip()]

        screen = visible_lines()
        page.emulate_media(media="print")
        printed = visible_lines()
        assert printed and set(printed) <= set(screen), set(printed) - set(screen)
        for kept in ("Cuídese en casa", "Qué hacer", "Cuándo pedir ayuda antes", "Por qué le recomendamos esto"):
            assert kept in printed
        for left_out in ("Imprimir este resumen", "Empezar un nuevo registro"):
            assert left_out in screen and left_out not in printed
        about_the_screen = [line for line in screen if line.startswith("Para proteger su privacidad")]
        assert about_the_screen and not set(about_the_screen) & set(printed)
        pdf = page.pdf(path=str(tmp_path / "summary.pdf"))   # it lays out as a printed page
        assert pdf.startswith(b"%PDF") and len(pdf) > 5_000
    finally:
        context.close()


def test_an_idle_spanish_kiosk_warns_in_spanish_then_clears_back_to_the_kiosks_language(browser, live_stack):
    from playwright.sync_api import expect

    context, page = open_kiosk(browser, live_stack.base_url["intake"] + "/kiosk", live_stack.kiosk_key())
    try:
        page.clock.install()
        page.get_by_role("link", name="Español").click()
        page.locator("#patient-given_name").fill("Lucía")
        page.clock.fast_forward("01:31")
        expect(page.get_by_role("dialog", name="¿Sigue ahí?")).to_be_visible()
        page.clock.fast_forward("00:30")
        expect(page.get_by_role("heading", name=ENGLISH_HEADING)).to_be_visible()
        expect(page.locator("#patient-given_name")).to_have_value("")
        assert "lang=" not in page.url
    finally:
        context.close()
