"""Every catalogue translates every patient-facing text of the rule file in force (issue 18).

A text is found by its context (its stable id) and its English text: when a clinician
changes an English text, its translation no longer applies (the kiosk would show English),
and this test fails until the catalogue is updated (`python -m services.triage.rules.catalogue`),
translated and reviewed. The compiled .mo the worker loads must hold exactly what its .po says.
"""
from __future__ import annotations

import string
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from services.triage.domain import default_rules_path, load_rules
from services.triage.rules import catalogue

LOCALE = Path(__file__).resolve().parents[2] / "services" / "triage" / "rules" / "locale"
LANGUAGES = sorted(path.name for path in LOCALE.iterdir() if path.is_dir())


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return dict(load_rules(default_rules_path()).texts)


def read(path: Path) -> Catalog:
    with path.open("rb") as source:
        return read_po(source)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_spanish_is_there_and_every_language_directory_is_a_catalogue():
    assert "es" in LANGUAGES
    for language in LANGUAGES:
        assert (LOCALE / language / "LC_MESSAGES" / "care_rules.po").is_file(), language


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_patient_facing_text_is_translated_for_the_english_text_in_force(texts, language):
    po = read(LOCALE / language / "LC_MESSAGES" / "care_rules.po")
    assert str(po.locale) == language
    problems = []
    for context, english in texts.items():
        entry = po.get(english, context=context)   # by context *and* the English text in force
        if entry is None:
            by_context = [m for m in po if m.context == context]
            problems.append(f"{context}: no entry" if not by_context else
                            f"{context}: translates another English text ({by_context[0].id!r})")
        elif not entry.string or not entry.string.strip():
            problems.append(f"{context}: not translated")
        elif entry.fuzzy:
            problems.append(f"{context}: fuzzy (the English changed: check and confirm the translation)")
        elif placeholders(entry.string) != placeholders(english):
            problems.append(f"{context}: placeholders {sorted(placeholders(entry.string))}, "
                            f"the English has {sorted(placeholders(english))}")
    assert problems == [], f"{language} catalogue: " + "; ".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_po_says_it_awaits_clinician_review(language):
    po = read(LOCALE / language / "LC_MESSAGES" / "care_rules.po")
    assert "AWAITING CLINICIAN REVIEW" in po.header_comment
    assert po.mime_headers and dict(po.mime_headers)["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_holds_exactly_what_its_po_says(language):
    directory = LOCALE / language / "LC_MESSAGES"
    compiled = directory / "care_rules.mo"
    assert compiled.is_file(), f"{compiled} missing: run python -m services.triage.rules.catalogue"
    with (directory / "care_rules.po").open("rb") as source:
        expected = BytesIO()
        write_mo(expected, read_po(source))
    assert compiled.read_bytes() == expected.getvalue(), "stale .mo: run python -m services.triage.rules.catalogue"


def test_the_template_and_catalogues_are_up_to_date_with_the_rule_file():
    assert catalogue.update(load_rules(default_rules_path()), LOCALE, check=True) == []
