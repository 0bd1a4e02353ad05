"""GET /kiosk, the touch-screen form patients fill in, and GET /kiosk/setup, where staff
store the kiosk key on the device once.

Setting up needs a staff token (scheduler or admin): the setup page first sends it to
POST /kiosk/setup/staff-check, which answers 204 only for staff in force (401 otherwise,
counted towards the failed-authentication limits), and offers to save or remove the key
only after that; saving or removing checks the token with the server again just before.
The token is held by the page's script in memory only, never stored. The patient screen
does not link to the setup page.

Both are static pages: kiosk.js sends the report to POST /v1/reports with the key kept in
the browser's localStorage, so no patient data and no key ever pass through these routes.
The choices offered come from the API schema's enumerations, so the form cannot drift from it.
The patient's page is in the language chosen for the request (kiosk_language.py, issue 18).
"""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from services.common.auth import require_staff

from services.common.report_vocabulary import PAIN_SCALE_MAX, PAIN_SCALE_MIN

from . import schemas
from .kiosk_language import LANGUAGE_NAMES
from .kiosk_text import script_texts

kiosk_blp = Blueprint(
    "kiosk", __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/kiosk/static",
)

# Plain words for the schema's values, in the order the schema lists them; lazy, so that each
# request gets them in its own language.
LOCATION_WORDS = {
    "groin": _l("Groin"),
    "inner_hip": _l("Inside of the hip"),
    "outer_hip": _l("Outside of the hip"),
    "upper_thigh": _l("Upper thigh"),
    "buttock": _l("Buttock"),
}
SIDE_WORDS = {"left": _l("Left hip"), "right": _l("Right hip"), "both": _l("Both hips")}
ONSET_WORDS = {"sudden": _l("Suddenly"), "gradual": _l("Gradually, over time")}
MEASURE_WORDS = {
    "rest": _l("Rest"),
    "activity_reduction": _l("Doing less sport or activity"),
    "ice": _l("Ice on the sore area"),
    "stretching": _l("Stretching"),
    "strengthening": _l("Strengthening exercises"),
}
# Consent per channel (PatientSchema.contact_consent), in the patient's words.
CONSENT_WORDS = {"sms": _l("Text me about my appointment"), "email": _l("Email me about my appointment")}
# The 0-10 numeric rating scale of PainSchema.severity, one big button per number.
SEVERITIES = range(PAIN_SCALE_MIN, PAIN_SCALE_MAX + 1)

# A page may only load its own files, and may only talk to its own origin: a script
# injected into a shared kiosk must not be able to send patient data or the key elsewhere.
# form-action 'none': the form is only ever sent by kiosk.js, never as a native GET that
# would put patient data in a URL.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def _choices(values: tuple[str, ...], words: dict) -> list[tuple[str, str]]:
    return [(value, str(words[value])) for value in values]


def _clinic_time_zone() -> str:
    # The app's settings (CLINIC_TIME_ZONE); a page served without them (the page's own unit
    # tests) shows UTC.
    clinic = current_app.extensions.get("clinic")
    return clinic.settings.clinic_time_zone if clinic is not None else "UTC"


@kiosk_blp.get("/kiosk")
def kiosk_form():
    return render_template(
        "kiosk.html",
        page="form",
        lang=str(get_locale()),
        # The patient chose it (?lang=): the next patient starts again from the browser's language.
        language_chosen="lang" in request.args,
        languages=list(LANGUAGE_NAMES.items()),
        texts=script_texts(),
        time_zone=_clinic_time_zone(),
        locations=_choices(schemas.PAIN_LOCATIONS, LOCATION_WORDS),
        sides=_choices(schemas.SIDES, SIDE_WORDS),
        onsets=_choices(schemas.ONSETS, ONSET_WORDS),
        measures=_choices(schemas.HOME_CARE_MEASURES, MEASURE_WORDS),
        severities=[(str(n), str(n)) for n in SEVERITIES],
        consents=_choices(schemas.CONTACT_CHANNELS, CONSENT_WORDS),
        limits={"mrn": schemas.MRN_MAX, "name": schemas.NAME_MAX, "sport": schemas.SPORT_MAX,
                "days": schemas.HOME_CARE_DAYS_MAX, "email": schemas.EMAIL_MAX},
    )


@kiosk_blp.get("/kiosk/setup")
def kiosk_setup():
    return render_template("kiosk.html", page="setup", lang="en")  # for staff: English only


@kiosk_blp.post("/kiosk/setup/staff-check")
@require_staff("scheduler", "admin")
def kiosk_setup_staff_check():
    """204 for a staff token in force (Authorization: Bearer); the setup page asks this before
    it saves or removes the kiosk key."""
    return "", 204


@kiosk_blp.after_request
def _page_headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.vary.add("Accept-Language")  # the page's language may come from it
    return response
