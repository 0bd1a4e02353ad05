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

import gettext
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType

from babel import Locale

from services.common.report_vocabulary import REPORT_LANGUAGES

from .compose import ENGLISH, Language

DOMAIN = "patient_messages"


class CataloguesMissing(RuntimeError):
    """A supported language has no (readable) compiled catalogue."""


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
    directory = directory or locale_dir()
    loaded, missing = {ENGLISH.code: ENGLISH}, []
    for code in languages:
        Locale.parse(code).days  # noqa: B018 - loads (and caches) the locale's CLDR data now
        if code == ENGLISH.code:
            continue
        path = directory.joinpath(code, "LC_MESSAGES", f"{DOMAIN}.mo")
        try:
            with path.open("rb") as compiled:
                catalogue = gettext.GNUTranslations(compiled)
        except (OSError, ValueError, struct.error) as error:  # missing, or not a .mo (bad magic, cut short)
            missing.append(f"{code} ({path}: {error})")
            continue
        loaded[code] = Language(code, catalogue.gettext, catalogue.pgettext)
    if missing:
        raise CataloguesMissing("no usable catalogue of the patient messages for: " + "; ".join(missing)
                                + " - run python -m services.intake.messages.catalogue")
    return Languages(MappingProxyType(loaded))
