"""The words kiosk.js says, in the patient's language (issue 18).

kiosk.js has no catalogue of its own: the page carries these texts, translated for its
request, as a JSON block that the script reads (a `<script type="application/json">`, data
that runs nothing, so the page's CSP stays `script-src 'self'`). Their msgids are in this
file, where services/intake/kiosk_catalogue.py finds them beside the template's.

`{name}` placeholders are filled by kiosk.js (a date's parts, a time range).
"""
from __future__ import annotations

from flask_babel import gettext as _


def script_texts() -> dict[str, str]:
    """Key -> text in the request's language. Called per request, never at import."""
    return {
        # care levels, as the outcome names them
        "care.urgent": _("See a clinician promptly"),
        "care.specialist": _("See a specialist"),
        "care.self_care": _("Care for it at home"),
        # where the report is
        "status.received": _("Your answers have been sent. We are looking at them now…"),
        "status.triaged": _("Your answers have been looked at. We are arranging an appointment for you…"),
        "status.referred": _("Your appointment is booked."),
        "status.waitlisted": _("You are on the waiting list for an appointment."),
        "status.closed_self_care": _("You do not need an appointment now."),
        "status.closed": _("Your report is closed."),
        "status.sent": _("Your answers have been sent."),
        "outcome.unavailable": _("We could not get the outcome on this screen. Please ask a member of staff."),
        "outcome.slow": _("This is taking longer than usual. Your answers are safely received: "
                          "a member of staff can tell you the outcome."),
        # "Monday 30 November 2026, 09:30 to 10:00": the day and the times, formatted by the browser
        "appointment.when": _("{day}, {start} to {end}"),
        # sending
        "send.button": _("Send my answers"),
        "send.sending": _("Sending…"),
        "send.retry": _("We could not send your answers just now. Please try again."),
        "send.not_set_up": _("This kiosk is not set up correctly. Please ask a member of staff for help."),
        "send.failed": _("Something went wrong. Please ask a member of staff for help."),
        # the form's own checks, and the API's messages said more plainly
        "error.answer": _("Please answer this question."),
        "error.date_numbers": _("Enter the day, the month and the year as numbers, for example 2 4 1991."),
        "error.date_real": _("Enter a real date: the day, the month and the year."),
        "error.date_future": _("This date cannot be in the future."),
        "error.consent_sms": _("Enter your phone number above, or untick “Text me about my appointment”."),
        "error.consent_email": _("Enter your email address above, or untick “Email me about my appointment”."),
        "error.consent_both": _("Enter your phone number and your email address above, or untick "
                                "“Text me about my appointment” and “Email me about my appointment”."),
        # the error summary's links: "<question>: <what to do>"
        "error.link": _("{question}: {message}"),
    }
