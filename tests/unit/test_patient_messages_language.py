"""Patient messages in the patient's language (issue 18): every change told in Spanish by
email and SMS, English exactly as before, dates in the language's own day and month names,
and a Spanish SMS in GSM-7 within one 160-septet segment."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake.messages import compose, gsm7
from services.intake.messages.changes import BOOKED, CANCELLED, MOVED, WAITLISTED, Appointment, Change
from services.intake.messages.translations import load_languages

T0 = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)  # a Wednesday: miércoles, mié
CLINIC = compose.ClinicContact(name="Clínica Norte", phone="+351 210 000 000", time_zone="Europe/Lisbon")
NO_PHONE = compose.ClinicContact(name="Clínica Norte", phone=None, time_zone="Europe/Lisbon")
SLOT = Appointment(T0, "Dra. Ana Núñez", "Clínica Norte, sala 2")


@pytest.fixture(scope="module")
def spanish():
    return load_languages().of("es")


def change(kind: str, appointment: Appointment | None = SLOT) -> Change:
    return Change(kind, 1, appointment)


# -- Spanish email ------------------------------------------------------------------------------
SPANISH_DETAILS = ["", "Cuándo: miércoles 2 de diciembre de 2026, 09:30 (Europe/Lisbon, WET)",
                   "Con: Dra. Ana Núñez", "Dónde: Clínica Norte, sala 2"]


@pytest.mark.parametrize("told, subject, lines", [
    (change(BOOKED), "Su cita está reservada - Clínica Norte",
     ["Su cita está reservada.", *SPANISH_DETAILS, "",
      "Si tiene alguna pregunta o no puede venir, llame a Clínica Norte al +351 210 000 000."]),
    (change(MOVED), "Su cita ha cambiado - Clínica Norte",
     ["Su cita ha cambiado de hora o de lugar.", *SPANISH_DETAILS, "",
      "Si tiene alguna pregunta o no puede venir, llame a Clínica Norte al +351 210 000 000."]),
    (change(CANCELLED), "Su cita está cancelada - Clínica Norte",
     ["La clínica ha cancelado su cita del miércoles 2 de diciembre de 2026, 09:30 (Europe/Lisbon, WET).", "",
      "Por favor, llame a Clínica Norte al +351 210 000 000 para pedir otra cita."]),
    (change(CANCELLED, None), "Su cita está cancelada - Clínica Norte",
     ["La clínica ha cancelado su cita.", "",
      "Por favor, llame a Clínica Norte al +351 210 000 000 para pedir otra cita."]),
    (change(WAITLISTED, None), "Está en nuestra lista de espera - Clínica Norte",
     ["Está en la lista de espera de Clínica Norte para una cita. Nos pondremos en contacto con usted en cuanto"
      " haya una hora libre.", "",
      "Si tiene alguna pregunta, llame a Clínica Norte al +351 210 000 000."]),
])
def test_a_spanish_email_for_each_change(spanish, told, subject, lines):
    mail = compose.email(told, CLINIC, spanish)
    assert mail.subject == subject
    assert mail.text == "\n".join(["Hola:", "", *lines, "", "Clínica Norte"]) + "\n"
    assert mail.html.startswith('<!DOCTYPE html><html lang="es"><head><meta charset="utf-8"><title>'
                                f"{subject}</title>")
    assert "<p>Hola:</p>" in mail.html and f"<p>{lines[0]}</p>" in mail.html


def test_a_spanish_email_names_the_details_in_spanish_in_its_html(spanish):
    body = compose.email(change(BOOKED), CLINIC, spanish).html.split("<body>")[1]
    assert ('<table><tr><th scope="row">Cuándo</th><td>miércoles 2 de diciembre de 2026, 09:30'
            ' (Europe/Lisbon, WET)</td></tr><tr><th scope="row">Con</th><td>Dra. Ana Núñez</td></tr>'
            '<tr><th scope="row">Dónde</th><td>Clínica Norte, sala 2</td></tr></table>') in body


@pytest.mark.parametrize("kind, appointment, reach", [
    (BOOKED, SLOT, "Si tiene alguna pregunta o no puede venir, póngase en contacto con Clínica Norte."),
    (CANCELLED, SLOT, "Por favor, póngase en contacto con Clínica Norte para pedir otra cita."),
    (WAITLISTED, None, "Si tiene alguna pregunta, póngase en contacto con Clínica Norte."),
])
def test_without_a_clinic_phone_a_spanish_email_says_whom_to_contact(spanish, kind, appointment, reach):
    assert compose.email(change(kind, appointment), NO_PHONE, spanish).text.endswith(
        f"\n\n{reach}\n\nClínica Norte\n")


# -- Spanish SMS ----------------------------------------------------------------------------------
@pytest.mark.parametrize("told, clinic, text", [
    (change(BOOKED), CLINIC, "Clinica Norte: tiene cita el mié 2 dic 2026, 09:30 WET con Dra. Ana Nuñez,"
                             " Clinica Norte, sala 2. Llame al +351 210 000 000"),
    (change(MOVED), CLINIC, "Clinica Norte: su cita ahora es el mié 2 dic 2026, 09:30 WET con Dra. Ana Nuñez,"
                            " Clinica Norte, sala 2. Llame al +351 210 000 000"),
    (change(CANCELLED), CLINIC, "Clinica Norte: la clinica ha cancelado su cita del mié 2 dic 2026, 09:30 WET."
                                " Llame al +351 210 000 000 para pedir otra cita."),
    (change(CANCELLED, None), CLINIC, "Clinica Norte: la clinica ha cancelado su cita. Llame al +351 210 000 000"
                                      " para pedir otra cita."),
    (change(WAITLISTED, None), CLINIC, "Clinica Norte: le hemos incluido en nuestra lista de espera; le avisaremos"
                                       " cuando haya una hora libre. Llame al +351 210 000 000"),
    (change(BOOKED), NO_PHONE, "Clinica Norte: tiene cita el mié 2 dic 2026, 09:30 WET con Dra. Ana Nuñez,"
                               " Clinica Norte, sala 2."),
    (change(CANCELLED), NO_PHONE, "Clinica Norte: la clinica ha cancelado su cita del mié 2 dic 2026, 09:30 WET."),
    (change(WAITLISTED, None), NO_PHONE, "Clinica Norte: le hemos incluido en nuestra lista de espera; le"
                                         " avisaremos cuando haya una hora libre."),
])
def test_a_spanish_sms_for_each_change_is_its_whole_wording_in_one_gsm7_segment(spanish, told, clinic, text):
    sms = compose.sms(told, clinic, spanish)
    assert sms == text
    assert gsm7.is_gsm7(sms) and gsm7.septets(sms) <= gsm7.SMS_SEPTETS


@pytest.mark.parametrize("kind", [BOOKED, MOVED])
@pytest.mark.parametrize("month", range(1, 13))
def test_every_spanish_booking_sms_keeps_provider_and_place_on_any_day_of_any_month(spanish, kind, month):
    """The longest abbreviations (mié, sáb, sept) included: the Spanish wording with realistic
    names never has to drop a detail, let alone be cut."""
    for day in range(1, 8):  # every weekday
        start = datetime(2027, month, day, 23, 59, tzinfo=UTC)
        appointment = Appointment(start, "Dra. María José Fernández", "Clínica Norte, sala 12")
        sms = compose.sms(Change(kind, 1, appointment), CLINIC, spanish)
        assert sms.endswith(" con Dra. Maria José Fernandez, Clinica Norte, sala 12. Llame al +351 210 000 000"), sms
        assert gsm7.septets(sms) <= gsm7.SMS_SEPTETS


def test_every_spanish_sms_wording_fits_one_segment_with_realistic_values(spanish):
    """Each wording of each change with the end sms() gives it, not only the one chosen, with
    the longest date: a shorter wording is a fallback for long names, not for the Spanish."""
    values = {"clinic": "Clínica Norte", "when": "mié 29 sept 2027, 23:59 WEST",
              "provider": "Dra. María José Fernández", "place": "Clínica Norte, sala 12"}
    call, rebook = (" " + spanish.gettext(end).format(phone="+351 210 000 000")
                    for end in ("Call {phone}", "Call {phone} to rebook."))
    ended = [(wording, call) for wording in compose._SMS_BOOKED + compose._SMS_MOVED + compose._SMS_WAITLISTED]
    ended += [(compose._SMS_CANCELLED_ON[0], rebook), (compose._SMS_CANCELLED_ON[1], call),
              (compose._SMS_CANCELLED[0], rebook), (compose._SMS_CANCELLED[1], call)]
    assert len(ended) == 12
    for english, end in ended:
        text = gsm7.to_gsm7(spanish.gettext(english).format(**values) + end)
        assert gsm7.is_gsm7(text) and gsm7.septets(text) <= gsm7.SMS_SEPTETS, text
        assert text != gsm7.to_gsm7(english.format(**values) + end)  # the Spanish, not the English


def test_spanish_in_gsm7_loses_only_the_accents_gsm7_lacks():
    assert gsm7.to_gsm7("¿Cuándo? ¡Sí! Señor Núñez, pingüino, café, acción, menú, sábado, miércoles") == \
        "¿Cuando? ¡Si! Señor Nuñez, pingüino, café, accion, menu, sabado, miércoles"
    assert gsm7.to_gsm7("ÁÉÍÑÓÚÜ") == "AÉIÑOUÜ"


# -- dates ------------------------------------------------------------------------------------------
def test_dates_in_spanish_use_spanish_day_and_month_names(spanish):
    assert compose.when(T0, "UTC", language=spanish) == "miércoles 2 de diciembre de 2026, 09:30 (UTC)"
    assert compose.when(T0, "America/New_York", language=spanish) == \
        "miércoles 2 de diciembre de 2026, 04:30 (America/New_York, EST)"
    assert compose.when(datetime(2027, 9, 4, 8, 0, tzinfo=UTC), "Europe/Madrid", short=True, language=spanish) == \
        "sáb 4 sept 2027, 10:00 CEST"


def test_dates_in_english_are_as_before_for_every_weekday_and_month():
    days = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    months = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")
    for month in range(1, 13):
        for day in range(1, 8):
            start = datetime(2027, month, day, 7, 5, tzinfo=UTC)
            weekday, name = days[start.weekday()], months[month - 1]
            assert compose.when(start, "UTC") == f"{weekday} {day} {name} 2027, 07:05 (UTC)"
            assert compose.when(start, "UTC", short=True) == f"{weekday[:3]} {day} {name[:3]} 2027 07:05 UTC"


# -- English, word for word as before issue 18 ----------------------------------------------------
ENGLISH_CLINIC = compose.ClinicContact(name="Clinic North", phone="+351 210 000 000", time_zone="Europe/Lisbon")
ENGLISH_SLOT = Appointment(T0, "Dr. Rui Costa", "Clinic North, room 2")
ENGLISH_DETAILS = ["", "When: Wednesday 2 December 2026, 09:30 (Europe/Lisbon, WET)", "With: Dr. Rui Costa",
                   "Where: Clinic North, room 2"]


@pytest.mark.parametrize("told, subject, lines, sms", [
    (Change(BOOKED, 1, ENGLISH_SLOT), "Your appointment is booked - Clinic North",
     ["Your appointment is booked.", *ENGLISH_DETAILS, "",
      "Please call Clinic North on +351 210 000 000 if you have a question or cannot come."],
     "Clinic North: appointment booked Wed 2 Dec 2026 09:30 WET with Dr. Rui Costa, Clinic North, room 2."
     " Call +351 210 000 000"),
    (Change(MOVED, 1, ENGLISH_SLOT), "Your appointment has moved - Clinic North",
     ["Your appointment has moved to a new time or place.", *ENGLISH_DETAILS, "",
      "Please call Clinic North on +351 210 000 000 if you have a question or cannot come."],
     "Clinic North: appointment moved to Wed 2 Dec 2026 09:30 WET with Dr. Rui Costa, Clinic North, room 2."
     " Call +351 210 000 000"),
    (Change(CANCELLED, 1, ENGLISH_SLOT), "Your appointment is cancelled - Clinic North",
     ["Your appointment on Wednesday 2 December 2026, 09:30 (Europe/Lisbon, WET) has been cancelled by the clinic.",
      "", "Please call Clinic North on +351 210 000 000 to book another time."],
     "Clinic North: your appointment on Wed 2 Dec 2026 09:30 WET is cancelled by the clinic."
     " Call +351 210 000 000 to rebook."),
    (Change(WAITLISTED, 1, None), "You are on our waiting list - Clinic North",
     ["You are on the waiting list of Clinic North for an appointment. We will contact you as soon as a time is"
      " free.", "", "Please call Clinic North on +351 210 000 000 if you have a question."],
     "Clinic North: you are on our waiting list; we will contact you when a time is free. Call +351 210 000 000"),
])
def test_english_is_word_for_word_as_before(told, subject, lines, sms):
    mail = compose.email(told, ENGLISH_CLINIC, compose.ENGLISH)
    assert mail.subject == subject
    assert mail.text == "\n".join(["Hello,", "", *lines, "", "Clinic North"]) + "\n"
    assert mail.html.startswith(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{subject}'
                                "</title></head><body><p>Hello,</p>")
    assert compose.sms(told, ENGLISH_CLINIC, compose.ENGLISH) == sms


def test_an_english_cancellation_sms_without_a_clinic_phone_ends_with_its_sentence():
    """Before issue 18 it read "... by the clinic. to rebook.": the phone's clause was cut in two."""
    clinic = compose.ClinicContact(name="Clinic North", phone=None, time_zone="UTC")
    assert compose.sms(Change(CANCELLED, 1, None), clinic, compose.ENGLISH) == \
        "Clinic North: your appointment is cancelled by the clinic."


def test_without_clinic_name_each_language_says_the_clinic_in_its_own_words(spanish):
    # CLINIC_NAME not set: never "llame a the clinic" in a Spanish message
    unnamed = compose.ClinicContact(None, None, "Europe/Lisbon")
    waitlisted = change(WAITLISTED, None)
    spanish_email = compose.email(waitlisted, unnamed, spanish)
    assert "la clínica" in spanish_email.text and "the clinic" not in spanish_email.text
    assert compose.sms(waitlisted, unnamed, spanish).startswith("la clinica: ")
    english_email = compose.email(waitlisted, unnamed, compose.ENGLISH)
    assert english_email.text.endswith("\nthe clinic\n") and "of the clinic for an appointment" in english_email.text
