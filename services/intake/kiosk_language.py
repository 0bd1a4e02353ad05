"""Which language the kiosk speaks to this patient (issue 18).

The patient chooses on the first screen (`/kiosk?lang=es`); until they do, the browser's
languages (Accept-Language) choose, and English when none is spoken here. The texts come
from gettext catalogues (services/intake/translations/<lang>/LC_MESSAGES/messages.po, with
the compiled .mo beside it) through Flask-Babel. Only the kiosk's pages are translated: the
API answers in English, and the outcome's advice and reasons come from triage already in
the report's language.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask, request
from flask_babel import Babel

from services.common.report_vocabulary import DEFAULT_LANGUAGE, REPORT_LANGUAGES

TRANSLATIONS = Path(__file__).with_name("translations")

# Each language's name in itself: the chooser must be readable by someone who reads no English.
LANGUAGE_NAMES = {"en": "English", "es": "Español"}


def chosen_language() -> str:
    """The language asked for in the URL, else the browser's best match, else English."""
    asked = request.args.get("lang", "")
    if asked in REPORT_LANGUAGES:
        return asked
    return request.accept_languages.best_match(REPORT_LANGUAGES, default=DEFAULT_LANGUAGE)


def install(app: Flask) -> None:
    """Flask-Babel on the intake app, with the kiosk's catalogues and the language chooser."""
    Babel(app, locale_selector=chosen_language, default_locale=DEFAULT_LANGUAGE,
          default_translation_directories=str(TRANSLATIONS))
