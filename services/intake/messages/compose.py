"""The words of a patient message (pure): an email (subject, text and HTML) and an SMS.

A message says what changed, when (the appointment's start in the clinic's time zone, the
zone shown), with whom and where, and how to reach the clinic. It is built from a `Change`
alone, which holds no care level, priority, rule, reason or symptom: none can leak in.
Everything that comes from outside (clinic name, provider, place, phone) is escaped in HTML.

Issue 18: in the patient's `Language`. Every sentence below is an msgid of the catalogue
`patient_messages` (services/intake/messages/locale, made by `python -m
services.intake.messages.catalogue`, which finds them by their gettext/pgettext/N_ calls): the
English sentence with named placeholders, so English needs no catalogue. The catalogue is
loaded by translations.py at the worker's start and comes in as the Language's lookups.
"""
from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from . import gsm7
from .changes import BOOKED, CANCELLED, MOVED, WAITLISTED, Appointment, Change


@dataclass(frozen=True)
class ClinicContact:
    name: str | None  # CLINIC_NAME; None when it is not set: "the clinic", in the patient's language
    phone: str | None  # CLINIC_CONTACT_PHONE
    time_zone: str  # CLINIC_TIME_ZONE, an IANA name


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Language:
    """What a message is written in: its BCP 47 tag (the email's lang, and Babel's locale for
    day and month names) and its catalogue's lookups, from an English msgid to its text."""
    code: str
    gettext: Callable[[str], str]
    pgettext: Callable[[str, str], str]


def _as_written(message: str) -> str:
    return message


def _as_written_in(_context: str, message: str) -> str:
    return message


ENGLISH = Language("en", _as_written, _as_written_in)


def N_(message: str) -> str:  # noqa: N802 - gettext's own name for "an msgid, translated where used"
    return message


def when(start: datetime, time_zone: str, *, short: bool = False, language: Language = ENGLISH) -> str:
    """`Tuesday 1 December 2026, 09:30 (Europe/Lisbon, WET)`; short: `Tue 1 Dec 2026 09:30 WET`.
    Day and month names are the language's own from Babel's CLDR data, never the process's
    locale; the zone is its IANA name and abbreviation in every language."""
    zone = ZoneInfo(time_zone)
    local = start.astimezone(zone)
    if short:
        # TRANSLATORS: a date pattern (CLDR/Babel syntax, not words): EEE the weekday abbreviated,
        # d the day, MMM the month abbreviated, y the year, HH:mm the time; text in 'quotes'.
        # Shown in an SMS, followed by the time zone's abbreviation.
        pattern = language.pgettext("date pattern", "EEE d MMM y HH:mm")
        return f"{format_datetime(local, pattern, tzinfo=zone, locale=language.code)} {local.tzname()}"
    # TRANSLATORS: a date pattern (CLDR/Babel syntax, not words): EEEE the weekday, d the day,
    # MMMM the month, y the year, HH:mm the time; text in 'quotes'. Followed by the time zone.
    pattern = language.pgettext("date pattern", "EEEE d MMMM y, HH:mm")
    shown = time_zone if local.tzname() == time_zone else f"{time_zone}, {local.tzname()}"
    return f"{format_datetime(local, pattern, tzinfo=zone, locale=language.code)} ({shown})"


_SUBJECTS = {BOOKED: N_("Your appointment is booked - {clinic}"),
             MOVED: N_("Your appointment has moved - {clinic}"),
             CANCELLED: N_("Your appointment is cancelled - {clinic}"),
             WAITLISTED: N_("You are on our waiting list - {clinic}")}

# How to reach the clinic, by change; with the clinic's phone, and without.
_CALL = {CANCELLED: N_("Please call {clinic} on {phone} to book another time."),
         WAITLISTED: N_("Please call {clinic} on {phone} if you have a question.")}
_CALL_ELSE = N_("Please call {clinic} on {phone} if you have a question or cannot come.")
_CONTACT = {CANCELLED: N_("Please contact {clinic} to book another time."),
            WAITLISTED: N_("Please contact {clinic} if you have a question.")}
_CONTACT_ELSE = N_("Please contact {clinic} if you have a question or cannot come.")

# An SMS's wordings, most complete first (sms() says why accents go). The note to translators
# is before each group: Babel gives a comment to the first msgid after it only.
# TRANSLATORS: an SMS, 160 characters at most with its values; á í ó ú lose their accent (é ñ ü keep it).
_SMS_BOOKED = (N_("{clinic}: appointment booked {when} with {provider}, {place}."),
               N_("{clinic}: appointment booked {when} with {provider}."),
               N_("{clinic}: appointment booked {when}."))
# TRANSLATORS: an SMS, 160 characters at most with its values; á í ó ú lose their accent (é ñ ü keep it).
_SMS_MOVED = (N_("{clinic}: appointment moved to {when} with {provider}, {place}."),
              N_("{clinic}: appointment moved to {when} with {provider}."),
              N_("{clinic}: appointment moved to {when}."))
# TRANSLATORS: an SMS, 160 characters at most with its values; á í ó ú lose their accent (é ñ ü keep it).
_SMS_CANCELLED_ON = (N_("{clinic}: your appointment on {when} is cancelled by the clinic."),
                     N_("{clinic}: appointment on {when} cancelled."))
# TRANSLATORS: an SMS, 160 characters at most with its values; á í ó ú lose their accent (é ñ ü keep it).
_SMS_CANCELLED = (N_("{clinic}: your appointment is cancelled by the clinic."),
                  N_("{clinic}: appointment cancelled."))
# TRANSLATORS: an SMS, 160 characters at most with its values; á í ó ú lose their accent (é ñ ü keep it).
_SMS_WAITLISTED = (N_("{clinic}: you are on our waiting list; we will contact you when a time is free."),
                   N_("{clinic}: you are on our waiting list."))


def _clinic_name(clinic: ClinicContact, language: Language) -> str:
    # TRANSLATORS: the clinic's name when none is configured; it starts an SMS and ends an email.
    return clinic.name or language.gettext("the clinic")


def _subject(change: Change, clinic: ClinicContact, language: Language) -> str:
    return language.gettext(_SUBJECTS[change.kind]).format(clinic=_clinic_name(clinic, language))


def _what(change: Change, clinic: ClinicContact, language: Language) -> str:
    """The one sentence that says what changed."""
    _ = language.gettext
    appointment = change.appointment
    if change.kind == BOOKED:
        return _("Your appointment is booked.")
    if change.kind == MOVED:
        return _("Your appointment has moved to a new time or place.")
    if change.kind == CANCELLED:
        if appointment is None:
            return _("Your appointment has been cancelled by the clinic.")
        return _("Your appointment on {when} has been cancelled by the clinic.").format(
            when=when(appointment.start, clinic.time_zone, language=language))
    return _("You are on the waiting list of {clinic} for an appointment. We will contact you as soon as a time"
             " is free.").format(clinic=_clinic_name(clinic, language))


def _details(appointment: Appointment, clinic: ClinicContact, language: Language) -> list[tuple[str, str]]:
    _ = language.gettext
    # TRANSLATORS: When, With and Where label the appointment's time, provider and place in an email.
    return [(_("When"), when(appointment.start, clinic.time_zone, language=language)),
            (_("With"), appointment.provider), (_("Where"), appointment.location)]


def _reach(change: Change, clinic: ClinicContact, language: Language) -> str:
    if clinic.phone:
        return language.gettext(_CALL.get(change.kind, _CALL_ELSE)).format(clinic=_clinic_name(clinic, language),
                                                                            phone=clinic.phone)
    return language.gettext(_CONTACT.get(change.kind, _CONTACT_ELSE)).format(clinic=_clinic_name(clinic, language))


def email(change: Change, clinic: ClinicContact, language: Language) -> Email:
    shows_slot = change.kind in (BOOKED, MOVED) and change.appointment is not None
    details = _details(change.appointment, clinic, language) if shows_slot else []
    # TRANSLATORS: an email's greeting, on a line of its own.
    hello = language.gettext("Hello,")
    what, reach, subject = _what(change, clinic, language), _reach(change, clinic, language), \
        _subject(change, clinic, language)
    lines = [hello, "", what]
    if details:
        lines += ["", *(f"{label}: {value}" for label, value in details)]
    lines += ["", reach, "", _clinic_name(clinic, language)]
    esc = html.escape
    parts = [f"<p>{esc(hello)}</p>", f"<p>{esc(what)}</p>"]
    if details:
        parts.append("<table>" + "".join(f"<tr><th scope=\"row\">{esc(label)}</th><td>{esc(value)}</td></tr>"
                                         for label, value in details) + "</table>")
    parts += [f"<p>{esc(reach)}</p>", f"<p>{esc(_clinic_name(clinic, language))}</p>"]
    page = (f"<!DOCTYPE html><html lang=\"{esc(language.code)}\"><head><meta charset=\"utf-8\"><title>"
            f"{esc(subject)}</title></head><body>{''.join(parts)}</body></html>")
    return Email(subject=subject, text="\n".join(lines) + "\n", html=page)


def sms(change: Change, clinic: ClinicContact, language: Language) -> str:
    """At most 160 GSM-7 septets: the most complete wording that fits, details dropped from
    the least needed (place, then provider) before the text is cut.

    In every language an SMS stays GSM-7, so that it stays one 160-septet segment: a single
    character outside GSM-7 (Spanish á í ó ú, say) would send the whole text as UCS-2, at
    most 70 characters a segment, and our messages would go in two or three parts, each
    billed, some shown apart or late. gsm7.to_gsm7 writes such letters without their accent,
    which a Spanish reader reads without trouble, and keeps é ñ ü ¿ ¡, which GSM-7 has."""
    _ = language.gettext
    values = {"clinic": _clinic_name(clinic, language)}
    call = rebook = ""
    if clinic.phone:
        # TRANSLATORS: ends an SMS, after its last sentence (no full stop); 160 characters in all.
        call = " " + _("Call {phone}").format(phone=clinic.phone)
        rebook = " " + _("Call {phone} to rebook.").format(phone=clinic.phone)
    appointment = change.appointment
    if change.kind in (BOOKED, MOVED) and appointment is not None:
        values.update(when=when(appointment.start, clinic.time_zone, short=True, language=language),
                      provider=appointment.provider, place=appointment.location)
        wordings, ends = (_SMS_BOOKED if change.kind == BOOKED else _SMS_MOVED), (call, call, call)
    elif change.kind == CANCELLED:
        if appointment is not None:
            values["when"] = when(appointment.start, clinic.time_zone, short=True, language=language)
        wordings, ends = (_SMS_CANCELLED_ON if appointment is not None else _SMS_CANCELLED), (rebook, call)
    else:
        wordings, ends = _SMS_WAITLISTED, (call, call)
    candidates = [_(wording).format(**values) + end for wording, end in zip(wordings, ends)]
    for candidate in candidates:
        text = gsm7.to_gsm7(candidate)
        if gsm7.septets(text) <= gsm7.SMS_SEPTETS:
            return text
    return gsm7.fit(candidates[-1])
