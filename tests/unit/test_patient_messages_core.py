"""Patient messages' pure core (services/intake/messages): what a new referral snapshot
tells, over which channels, in which words; SMS in GSM-7 within 160 septets."""
from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from services.common.report_vocabulary import REPORT_LANGUAGES
from services.intake.messages import compose, gsm7
from services.intake.messages.changes import (BOOKED, CANCELLED, CHANGES, MOVED, WAITLISTED, Appointment, Change,
                                              change_to_tell)
from services.intake.messages.contact import Recipient, recipients
from services.intake.messages.sender import retry_delay
from services.intake.messages.translations import load_languages

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
PURE = ("changes", "contact", "compose", "gsm7", "outcome")


@pytest.fixture(scope="module")
def languages():
    return load_languages()
IO = ("flask", "psycopg", "psycopg_pool", "kafka", "smtplib", "socket", "urllib", "http", "requests")


def slot(slot_id: str = "s1", start: datetime = T0, provider: str = "Dr. Rui Costa",
         location: str = "Clinic North, room 2") -> dict:
    return {"slot_id": slot_id, "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
            "provider": provider, "location": location}


def snap(status: str, sequence: int, appointment: dict | None = None, **more) -> dict:
    return {"referral_id": "r", "report_ids": ["a"], "priority": "urgent", "care_level": "urgent",
            "status": status, "sequence": sequence, "appointment": appointment, **more}


# -- what is told --------------------------------------------------------------------------
@pytest.mark.parametrize("previous, new, told", [
    (None, snap("booked", 1, slot()), BOOKED),
    (snap("waitlisted", 1), snap("booked", 2, slot()), BOOKED),  # a fill from the waitlist
    (snap("booked", 1, slot()), snap("booked", 2, slot("s2", T0 + timedelta(days=1))), MOVED),
    (snap("booked", 1, slot()), snap("booked", 2, slot(location="Clinic South")), MOVED),
    (snap("booked", 1, slot()), snap("booked", 2, slot(), priority="urgent"), None),  # priority raised in place
    (None, snap("waitlisted", 1), WAITLISTED),
    (snap("booked", 1, slot()), snap("waitlisted", 2), WAITLISTED),
    (snap("waitlisted", 1), snap("waitlisted", 2), None),
    (snap("booked", 1, slot()), snap("cancelled", 2), CANCELLED),
    (snap("cancelled", 2), snap("cancelled", 3), None),
    (snap("booked", 1, slot()), snap("completed", 2, slot()), None),
    (snap("booked", 3, slot()), snap("waitlisted", 2), None),  # a late, older snapshot
    (snap("booked", 3, slot()), snap("cancelled", 3), None),  # the same sequence again
    (None, snap("booked", 1, None), None),  # a booking without a slot says nothing
])
def test_what_a_new_snapshot_tells(previous, new, told):
    change = change_to_tell(previous, new)
    assert (change.kind if change else None) == told
    if change:
        assert change.sequence == new["sequence"]


def test_a_booking_tells_the_new_slot_and_a_cancellation_the_lost_one():
    moved = change_to_tell(snap("booked", 1, slot()), snap("booked", 2, slot("s2", T0 + timedelta(hours=2))))
    assert moved.appointment == Appointment(T0 + timedelta(hours=2), "Dr. Rui Costa", "Clinic North, room 2")
    cancelled = change_to_tell(snap("booked", 1, slot()), snap("cancelled", 2, None))
    assert cancelled.appointment.start == T0
    assert change_to_tell(None, snap("cancelled", 1)).appointment is None


# -- channels ----------------------------------------------------------------------------------
@pytest.mark.parametrize("patient, expected", [
    ({"phone": "+1 555", "email": "a@x.org", "contact_consent": ["sms", "email"]},
     [Recipient("email", "a@x.org"), Recipient("sms", "+1 555")]),
    ({"phone": "+1 555", "email": "a@x.org", "contact_consent": ["email"]}, [Recipient("email", "a@x.org")]),
    ({"phone": "+1 555"}, [Recipient("phone", "+1 555")]),  # a report from before consent existed
    ({"phone": "+1 555", "contact_consent": []}, [Recipient("phone", "+1 555")]),
    ({"phone": " ", "contact_consent": ["sms"]}, [Recipient("phone", None)]),  # consent without its address
    ({"mrn_pseudonym": "pseudonym:x"}, [Recipient("phone", None)]),  # purged
    (None, [Recipient("phone", None)]),
    ({"phone": "+1 555", "contact_consent": "sms"}, [Recipient("phone", "+1 555")]),  # not a list: no consent
])
def test_channels_are_the_consented_ones_with_an_address_else_a_call(patient, expected):
    assert recipients(patient) == expected


# -- words -------------------------------------------------------------------------------------
CLINIC = compose.ClinicContact(name="Clinic North", phone="+351 210 000 000", time_zone="Europe/Lisbon")


def test_an_email_says_when_in_the_clinics_zone_with_whom_where_and_how_to_reach_it():
    mail = compose.email(Change(BOOKED, 2, Appointment(datetime(2026, 7, 1, 8, 30, tzinfo=UTC), "Dr. Rui Costa",
                                                       "Room 2")), CLINIC, compose.ENGLISH)
    assert mail.subject == "Your appointment is booked - Clinic North"
    for part in (mail.text, mail.html):
        assert "Wednesday 1 July 2026, 09:30 (Europe/Lisbon, WEST)" in part  # summer time: UTC+1
        assert "Dr. Rui Costa" in part and "Room 2" in part and "+351 210 000 000" in part


def test_html_escapes_everything_that_comes_from_outside():
    clinic = compose.ClinicContact(name="<b>North</b> & co", phone="<script>", time_zone="UTC")
    mail = compose.email(Change(MOVED, 2, Appointment(T0, "Dr. <i>X</i>", "Room \"2\" & 3")), clinic, compose.ENGLISH)
    body = mail.html.split("<body>")[1]
    assert "<b>" not in body and "<i>" not in body and "<script>" not in body
    assert "&lt;b&gt;North&lt;/b&gt; &amp; co" in body and "Room &quot;2&quot; &amp; 3" in body
    assert "Dr. <i>X</i>" in mail.text  # the text part is plain text


def test_the_time_zone_is_shown_and_used():
    assert compose.when(T0, "America/New_York") == "Tuesday 1 December 2026, 04:30 (America/New_York, EST)"
    assert compose.when(T0, "UTC") == "Tuesday 1 December 2026, 09:30 (UTC)"
    assert compose.when(T0, "Asia/Kolkata", short=True) == "Tue 1 Dec 2026 15:00 IST"


def test_without_a_clinic_phone_the_message_still_says_whom_to_contact():
    clinic = compose.ClinicContact(name="Clinic North", phone=None, time_zone="UTC")
    assert "Please contact Clinic North" in compose.email(Change(WAITLISTED, 1, None), clinic, compose.ENGLISH).text
    assert "Call" not in compose.sms(Change(WAITLISTED, 1, None), clinic, compose.ENGLISH)


# Care levels, priorities, rules, reasons and symptoms: never in a message (in English or Spanish).
CLINICAL = re.compile(r"urgent|specialist|self.?care|priority|triage|rule|reason|symptom|pain|injur|fracture"
                      r"|URG-|SPC-|especialista|autocuidado|prioridad|triaje|regla|motivo|s[ií]ntoma|dolor|lesi[oó]n"
                      r"|fractura", re.IGNORECASE)
safe_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=120).filter(
    lambda t: not CLINICAL.search(t))
zones = st.sampled_from(["UTC", "Europe/Lisbon", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
changes = st.builds(
    lambda kind, start, provider, location: Change(kind, 1, None if kind == WAITLISTED else
                                                   Appointment(start, provider, location)),
    st.sampled_from(CHANGES), st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31),
                                           timezones=st.just(UTC)), safe_text, safe_text)
clinics = st.builds(compose.ClinicContact, safe_text, st.one_of(st.none(), safe_text), zones)


@settings(max_examples=300, deadline=None)
@given(changes, clinics, st.sampled_from(REPORT_LANGUAGES))
def test_no_message_names_a_care_level_rule_reason_or_symptom(languages, change, clinic, code):
    language = languages.of(code)
    mail = compose.email(change, clinic, language)
    for text in (mail.subject, mail.text, mail.html, compose.sms(change, clinic, language)):
        assert not CLINICAL.search(text), text


@settings(max_examples=300, deadline=None)
@given(changes, clinics, st.sampled_from(REPORT_LANGUAGES))
def test_an_sms_is_gsm7_and_fits_in_160_septets(languages, change, clinic, code):
    text = compose.sms(change, clinic, languages.of(code))
    assert gsm7.is_gsm7(text) and gsm7.septets(text) <= 160 and text


def test_an_sms_keeps_the_time_and_drops_the_place_before_cutting():
    long_place = "Building " + "B" * 120
    text = compose.sms(Change(BOOKED, 1, Appointment(T0, "Dr. Rui Costa", long_place)), CLINIC, compose.ENGLISH)
    assert text == "Clinic North: appointment booked Tue 1 Dec 2026 09:30 WET with Dr. Rui Costa. Call +351 210 000 000"


# -- GSM-7 -----------------------------------------------------------------------------------------
def test_extended_characters_take_two_septets():
    assert gsm7.septets("abc") == 3 and gsm7.septets("€[]") == 6
    assert gsm7.septets(gsm7.fit("€" * 100)) <= 160
    assert gsm7.fit("€" * 100) == "€" * 78 + "..."


def test_characters_outside_gsm7_are_replaced_sensibly():
    assert gsm7.to_gsm7("“Olá” – São João’s ç…") == "\"Ola\" - Sao Joao's c..."
    assert gsm7.to_gsm7("é ü Ç £ ¥") == "é ü Ç £ ¥"  # in the table: kept
    assert gsm7.to_gsm7("中\u00a0✓") == "? ?"


@given(st.text(max_size=400))
def test_fit_always_gives_gsm7_within_the_limit(text):
    fitted = gsm7.fit(text)
    assert gsm7.is_gsm7(fitted) and gsm7.septets(fitted) <= 160
    if gsm7.septets(gsm7.to_gsm7(text)) <= 160:
        assert fitted == gsm7.to_gsm7(text)


def test_backoff_doubles_up_to_its_ceiling():
    assert [retry_delay(n, 30) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(20, 30) == 3600


@pytest.mark.parametrize("module", PURE)
def test_the_core_does_no_io(module):
    path = Path(__file__).resolve().parents[2] / "services" / "intake" / "messages" / f"{module}.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            imported.add(node.module.split(".")[0])
    assert not imported & set(IO)
