"""Every catalogue translates every patient-facing text of the rule file in force (issue 18).

A text is found by its context (its stable id) and its English text: when a clinician
changes an English text, its translation no longer applies (the kiosk would show English),
and this test fails until the catalogue is updated (`python -m services.triage.rules.catalogue`),
translated and reviewed. The compiled .mo the worker loads must hold exactly what its .po says.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalogue_support import compiled, languages, read, untranslated

from services.triage.domain import default_rules_path, load_rules

LOCALE = Path(__file__).resolve().parents[2] / "services" / "triage" / "rules" / "locale"
LANGUAGES = languages(LOCALE)


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return dict(load_rules(default_rules_path()).texts)


def test_spanish_is_there_and_every_language_directory_is_a_catalogue():
    assert "es" in LANGUAGES
    for language in LANGUAGES:
        assert (LOCALE / language / "LC_MESSAGES" / "care_rules.po").is_file(), language


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_patient_facing_text_is_translated_for_the_english_text_in_force(texts, language):
    po = read(LOCALE / language / "LC_MESSAGES" / "care_rules.po")
    assert str(po.locale) == language
    problems = untranslated(po, texts.items())   # by context *and* the English text in force
    assert problems == [], f"{language} catalogue: " + "; ".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_po_says_it_awaits_clinician_review(language):
    po = read(LOCALE / language / "LC_MESSAGES" / "care_rules.po")
    assert "AWAITING CLINICIAN REVIEW" in po.header_comment
    assert po.mime_headers and dict(po.mime_headers)["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_holds_exactly_what_its_po_says(language):
    directory = LOCALE / language / "LC_MESSAGES"
    mo = directory / "care_rules.mo"
    assert mo.is_file(), f"{mo} missing: run python -m services.triage.rules.catalogue"
    assert mo.read_bytes() == compiled(directory / "care_rules.po"), \
        "stale .mo: run python -m services.triage.rules.catalogue"
