"""The catalogues of the patient messages' words, loaded at the worker's start (issue 18).

    languages = load_languages()       # at worker start (MessageSender); never at import
    compose.email(change, clinic, languages.of(row.language))

One compiled catalogue (.mo) per supported language but English, whose words are the
msgids: services/intake/messages/locale/<lang>/LC_MESSAGES/patient_messages.mo (made by
`python -m services.intake.messages.catalogue`). A supported language without a usable
catalogue stops the start with CataloguesMissing: a patient who filled the kiosk in Spanish
must not be told of their appointment in English without anyone knowing.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType

from babel import Locale

# CataloguesMissing re-exported: what a start that lacks a catalogue raises
from services.common.catalogue_files import CataloguesMissing, load_compiled  # noqa: F401
from services.common.report_vocabulary import REPORT_LANGUAGES

from .compose import ENGLISH, Language

DOMAIN = "patient_messages"


@dataclass(frozen=True)
class Languages:
    by_code: Mapping[str, Language]

    def of(self, code: str) -> Language:
        """The Language of a message row. A row's language is a supported one (store.known_of
        makes sure); any other, a row written by hand, is told in English."""
        return self.by_code.get(code, ENGLISH)


def locale_dir() -> Traversable:
    return resources.files("services.intake.messages").joinpath("locale")


def load_languages(languages: tuple[str, ...] = REPORT_LANGUAGES, directory: Traversable | None = None) -> Languages:
    """Every supported language, each with its catalogue and Babel's data for its day and month
    names (read now, not on the first message); CataloguesMissing naming each one missing."""
    for code in languages:
        Locale.parse(code).days  # noqa: B018 - loads (and caches) the locale's CLDR data now
    compiled = load_compiled(directory or locale_dir(), DOMAIN, [code for code in languages if code != ENGLISH.code],
                             texts="the patient messages", command="python -m services.intake.messages.catalogue")
    loaded = {ENGLISH.code: ENGLISH}
    loaded.update({code: Language(code, catalogue.gettext, catalogue.pgettext) for code, catalogue in compiled.items()})
    return Languages(MappingProxyType(loaded))
