"""The catalogues of the rule file's patient-facing texts, loaded at start (issue 18).

    catalogues = load_catalogues()        # at worker or app start; never at import
    translate = catalogues.lookup("es")   # (context, English) -> Spanish, or the English

One compiled catalogue (.mo) per supported language but English, the rule file's own
language, under services/triage/rules/locale/<lang>/LC_MESSAGES/care_rules.mo (made by
`python -m services.triage.rules.catalogue`). A supported language without its catalogue
stops the start with CataloguesMissing: a Spanish-speaking patient must not silently get
every text in English.
"""
from __future__ import annotations

import gettext
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType

# CataloguesMissing re-exported: what a start that lacks a catalogue raises
from services.common.catalogue_files import CataloguesMissing, load_compiled  # noqa: F401
from services.common.report_vocabulary import REPORT_LANGUAGES

from .domain.patient_text import RULE_FILE_LANGUAGE, Translate, english

DOMAIN = "care_rules"


@dataclass(frozen=True)
class Catalogues:
    by_language: Mapping[str, gettext.GNUTranslations]

    def lookup(self, language: str) -> Translate:
        """The translation lookup for `language`: pgettext, which gives the English back for a
        text it does not hold (an English text changed since it was translated)."""
        catalogue = self.by_language.get(language)
        return catalogue.pgettext if catalogue is not None else english


def locale_dir() -> Traversable:
    return resources.files("services.triage.rules").joinpath("locale")


def load_catalogues(languages: tuple[str, ...] = REPORT_LANGUAGES, directory: Traversable | None = None) -> Catalogues:
    """Every supported language's catalogue; CataloguesMissing naming each one that is not there."""
    loaded = load_compiled(directory or locale_dir(), DOMAIN,
                           [language for language in languages if language != RULE_FILE_LANGUAGE],
                           texts="the care rules' patient texts", command="python -m services.triage.rules.catalogue")
    return Catalogues(MappingProxyType(loaded))
