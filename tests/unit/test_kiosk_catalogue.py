"""Every catalogue of the kiosk translates every text the kiosk shows (issue 18).

The msgids are the English texts of kiosk.html, kiosk_page.py and kiosk_text.py, found as
`make translations` finds them (services/intake/kiosk_catalogue.py, per babel.cfg). A new or
changed English text has no translation yet, so a Spanish-speaking patient would read it in
English: this test fails until the catalogue is updated and translated. The compiled .mo Flask-Babel loads must hold
exactly what its .po says, and kiosk.js may only ask for words kiosk_text.py gives it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.catalogue_support import compiled, languages, read, untranslated

from services.common.report_vocabulary import REPORT_LANGUAGES
from services.intake import events, kiosk_catalogue, kiosk_language

REPO = Path(__file__).resolve().parents[2]
LOCALE = kiosk_language.TRANSLATIONS
LANGUAGES = languages(LOCALE)


def used() -> set[tuple[str | None, str]]:
    """(msgctxt, msgid) of every text the kiosk's sources ask gettext for."""
    return set(kiosk_catalogue.used())


def test_every_supported_language_but_english_has_a_catalogue_and_no_other_does():
    assert LANGUAGES == sorted(set(REPORT_LANGUAGES) - {"en"}) == ["es"]


def test_the_template_holds_every_text_of_the_sources():
    pot = read(LOCALE / "messages.pot")
    texts = used()
    assert len(texts) >= 140
    assert {(message.context, message.id) for message in pot if message.id} == texts, "run `make translations`"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_the_kiosk_shows_is_translated(language):
    po = read(LOCALE / language / "LC_MESSAGES" / "messages.po")
    assert str(po.locale) == language
    problems = untranslated(po, sorted(used(), key=lambda entry: entry[1]))
    assert problems == [], f"{language} catalogue: " + "; ".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogue_is_its_po(language):
    folder = LOCALE / language / "LC_MESSAGES"
    assert (folder / "messages.mo").read_bytes() == compiled(folder / "messages.po"), "run `make translations`"


# Jinja's gettext (Flask-Babel's newstyle) marks a translation safe: it is written into the page
# as it is, inside text and attribute values alike. So a translation may hold none of the
# characters HTML gives a meaning to that its English lacks (a quote would end data-label="").
MARKUP = set('<>&"')


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_translation_carries_markup_its_english_lacks(language):
    po = read(LOCALE / language / "LC_MESSAGES" / "messages.po")
    risky = [message.id for message in po if message.id and set(message.string) & MARKUP - set(message.id)]
    assert risky == []


def test_kiosk_js_asks_only_for_words_the_page_gives_it():
    from flask import Flask

    from services.intake.kiosk_text import script_texts

    app = Flask(__name__)
    kiosk_language.install(app)
    with app.test_request_context("/kiosk"):
        given = set(script_texts())
    script = (REPO / "services" / "intake" / "static" / "kiosk.js").read_text()
    asked = set(re.findall(r"""\bt\(\s*"([a-z_.]+)\"""", script))
    assert len(asked) >= 10 and asked <= given, sorted(asked - given)
    # the keys kiosk.js builds from a value: one per value it can be given
    assert re.search(r"t\(`care\.\$\{report\.care_level\}`\)", script)
    assert {f"care.{level}" for level in events.CARE_LEVELS} <= given
    assert re.search(r"t\(`status\.\$\{report\.status\}`\)", script)
    assert {f"status.{status}" for status in ("received", "triaged", "referred", "waitlisted")} <= given
    assert re.search(r"`error\.consent_\$\{missing\[0\]\}`", script)
    assert {"error.consent_sms", "error.consent_email", "error.consent_both"} <= given
