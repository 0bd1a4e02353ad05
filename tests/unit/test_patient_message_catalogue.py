"""Every catalogue of the patient messages translates every sentence compose.py uses (issue 18).

The msgids are the English sentences: when one changes in compose.py, its translation no
longer applies (the patient would get the English), and this test fails until the catalogue
is updated (`python -m services.intake.messages.catalogue`) and translated. The compiled .mo
the worker loads must hold exactly what its .po says.
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from babel.dates import format_datetime

from tests.catalogue_support import compiled, languages, read, untranslated

from services.common.catalogue_files import catalogue_path
from services.common.report_vocabulary import REPORT_LANGUAGES
from services.intake.messages import catalogue, compose
from services.intake.messages.changes import CHANGES, WAITLISTED, Appointment, Change
from services.intake.messages.translations import CataloguesMissing, load_languages

LOCALE = catalogue.locale_dir()
LANGUAGES = languages(LOCALE)


def po_path(language: str):
    return catalogue_path(LOCALE, catalogue.DOMAIN.name, language)


def po_of(language: str):
    return read(po_path(language))


def test_every_supported_language_but_english_has_a_catalogue_and_no_other_does():
    assert LANGUAGES == sorted(set(REPORT_LANGUAGES) - {"en"}) == ["es"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_the_code_uses_is_translated(language):
    po = po_of(language)
    assert str(po.locale) == language
    used = [(context, message) for context, message, _comments in catalogue.used()]
    assert len(used) == 36
    problems = untranslated(po, used)
    assert problems == [], f"{language} catalogue: " + "; ".join(problems)


def test_the_code_asks_for_no_message_the_catalogue_tool_does_not_find():
    """Every lookup compose makes, for every change, with and without a phone, is one that
    catalogue.used() extracts: a sentence built out of Babel's sight could not be translated."""
    asked = set()
    recording = compose.Language("en", lambda m: asked.add((None, m)) or m,
                                 lambda c, m: asked.add((c, m)) or m)
    slot = Appointment(datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "Dr. Rui Costa", "Room 2")
    for kind in CHANGES:
        for appointment in ((None,) if kind == WAITLISTED else (slot, None)):
            for phone in ("+351 210 000 000", None):
                clinic = compose.ClinicContact("Clinic North", phone, "UTC")
                compose.email(Change(kind, 1, appointment), clinic, recording)
                compose.sms(Change(kind, 1, appointment), clinic, recording)
                tight = compose.ClinicContact("C" * 140, phone, "UTC")  # the shorter SMS wordings too
                compose.sms(Change(kind, 1, appointment), tight, recording)
                unnamed = compose.ClinicContact(None, phone, "UTC")  # CLINIC_NAME not set
                compose.email(Change(kind, 1, appointment), unnamed, recording)
    assert asked == {(context, message) for context, message, _comments in catalogue.used()}


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_date_pattern_is_one_babel_can_format_with_the_day_month_and_time(language):
    po = po_of(language)
    start = datetime(2027, 9, 29, 23, 59, tzinfo=UTC)
    for message in po:
        if message.context == "date pattern":
            shown = format_datetime(start, message.string, tzinfo=UTC, locale=language)
            assert "29" in shown and "2027" in shown and "23:59" in shown, (message.string, shown)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_holds_exactly_what_its_po_says(language):
    mo = po_path(language).with_suffix(".mo")
    assert mo.is_file(), f"{mo} missing: run python -m services.intake.messages.catalogue"
    assert mo.read_bytes() == compiled(po_path(language)), \
        "stale .mo: run python -m services.intake.messages.catalogue"


def test_the_worker_loads_every_language_and_a_missing_catalogue_stops_it(tmp_path):
    loaded = load_languages()
    assert loaded.of("es").gettext("Hello,") == "Hola:"
    assert loaded.of("en") is compose.ENGLISH and loaded.of("fr") is compose.ENGLISH
    with pytest.raises(CataloguesMissing, match=r"\bes\b"):
        load_languages(directory=tmp_path)
    (tmp_path / "es" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "es" / "LC_MESSAGES" / "patient_messages.mo").write_bytes(b"not a catalogue")
    with pytest.raises(CataloguesMissing, match=r"\bes\b"):
        load_languages(directory=tmp_path)
