"""The words of a patient message (pure): an email (subject, text and HTML) and an SMS.

A message says what changed, when (the appointment's start in the clinic's time zone, the
zone shown), with whom and where, and how to reach the clinic. It is built from a `Change`
alone, which holds no care level, priority, rule, reason or symptom: none can leak in.
Everything that comes from outside (clinic name, provider, place, phone) is escaped in HTML.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from . import gsm7
from .changes import BOOKED, CANCELLED, MOVED, WAITLISTED, Appointment, Change

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


@dataclass(frozen=True)
class ClinicContact:
    name: str  # CLINIC_NAME
    phone: str | None  # CLINIC_CONTACT_PHONE
    time_zone: str  # CLINIC_TIME_ZONE, an IANA name


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def when(start: datetime, time_zone: str, *, short: bool = False) -> str:
    """`Tuesday 1 December 2026, 09:30 (Europe/Lisbon, WET)`; short: `Tue 1 Dec 2026 09:30 WET`.
    English names of our own: the process's locale does not change what a patient reads."""
    local = start.astimezone(ZoneInfo(time_zone))
    day, month = _DAYS[local.weekday()], _MONTHS[local.month - 1]
    if short:
        return f"{day[:3]} {local.day} {month[:3]} {local.year} {local:%H:%M} {local.tzname()}"
    zone = time_zone if local.tzname() == time_zone else f"{time_zone}, {local.tzname()}"
    return f"{day} {local.day} {month} {local.year}, {local:%H:%M} ({zone})"


def _subject(change: Change, clinic: ClinicContact) -> str:
    return {BOOKED: "Your appointment is booked", MOVED: "Your appointment has moved",
            CANCELLED: "Your appointment is cancelled", WAITLISTED: "You are on our waiting list"}[change.kind] \
        + f" - {clinic.name}"


def _what(change: Change, clinic: ClinicContact) -> str:
    """The one sentence that says what changed."""
    appointment = change.appointment
    if change.kind == BOOKED:
        return "Your appointment is booked."
    if change.kind == MOVED:
        return "Your appointment has moved to a new time or place."
    if change.kind == CANCELLED:
        return ("Your appointment has been cancelled by the clinic." if appointment is None else
                f"Your appointment on {when(appointment.start, clinic.time_zone)} has been cancelled by the clinic.")
    return (f"You are on the waiting list of {clinic.name} for an appointment. We will contact you as soon"
            " as a time is free.")


def _details(appointment: Appointment, clinic: ClinicContact) -> list[tuple[str, str]]:
    return [("When", when(appointment.start, clinic.time_zone)), ("With", appointment.provider),
            ("Where", appointment.location)]


def _reach(change: Change, clinic: ClinicContact) -> str:
    ask = {CANCELLED: "to book another time", WAITLISTED: "if you have a question"}.get(
        change.kind, "if you have a question or cannot come")
    if clinic.phone:
        return f"Please call {clinic.name} on {clinic.phone} {ask}."
    return f"Please contact {clinic.name} {ask}."


def email(change: Change, clinic: ClinicContact) -> Email:
    shows_slot = change.kind in (BOOKED, MOVED) and change.appointment is not None
    details = _details(change.appointment, clinic) if shows_slot else []
    lines = ["Hello,", "", _what(change, clinic)]
    if details:
        lines += ["", *(f"{label}: {value}" for label, value in details)]
    lines += ["", _reach(change, clinic), "", clinic.name]
    esc = html.escape
    parts = ["<p>Hello,</p>", f"<p>{esc(_what(change, clinic))}</p>"]
    if details:
        parts.append("<table>" + "".join(f"<tr><th scope=\"row\">{esc(label)}</th><td>{esc(value)}</td></tr>"
                                         for label, value in details) + "</table>")
    parts += [f"<p>{esc(_reach(change, clinic))}</p>", f"<p>{esc(clinic.name)}</p>"]
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{esc(_subject(change, clinic))}</title></head><body>{''.join(parts)}</body></html>")
    return Email(subject=_subject(change, clinic), text="\n".join(lines) + "\n", html=page)


def sms(change: Change, clinic: ClinicContact) -> str:
    """At most 160 GSM-7 septets: the most complete wording that fits, details dropped from
    the least needed (place, then provider) before the text is cut."""
    call = f" Call {clinic.phone}" if clinic.phone else ""
    appointment = change.appointment
    if change.kind in (BOOKED, MOVED) and appointment is not None:
        verb = "booked" if change.kind == BOOKED else "moved to"
        at = when(appointment.start, clinic.time_zone, short=True)
        candidates = [
            f"{clinic.name}: appointment {verb} {at} with {appointment.provider}, {appointment.location}.{call}",
            f"{clinic.name}: appointment {verb} {at} with {appointment.provider}.{call}",
            f"{clinic.name}: appointment {verb} {at}.{call}",
        ]
    elif change.kind == CANCELLED:
        on = f" on {when(appointment.start, clinic.time_zone, short=True)}" if appointment is not None else ""
        candidates = [f"{clinic.name}: your appointment{on} is cancelled by the clinic.{call} to rebook.",
                      f"{clinic.name}: appointment{on} cancelled.{call}"]
    else:
        candidates = [f"{clinic.name}: you are on our waiting list; we will contact you when a time is free.{call}",
                      f"{clinic.name}: you are on our waiting list.{call}"]
    for candidate in candidates:
        text = gsm7.to_gsm7(candidate)
        if gsm7.septets(text) <= gsm7.SMS_SEPTETS:
            return text
    return gsm7.fit(candidates[-1])
