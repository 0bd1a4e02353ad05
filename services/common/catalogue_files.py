"""Where a gettext domain's catalogues are, and loading the compiled ones (issue 18).

    <locale dir>/<lang>/LC_MESSAGES/<domain>.po   the catalogue a translator edits
    <locale dir>/<lang>/LC_MESSAGES/<domain>.mo   what the service loads

The same layout for triage's care rules, intake's patient messages and the kiosk (written by
services/common/catalogue_tool.py). A supported language without a usable .mo stops the
service's start with CataloguesMissing: a patient who reads Spanish must not silently get
English.
"""
from __future__ import annotations

import gettext
import struct
from collections.abc import Iterable
from importlib.resources.abc import Traversable
from pathlib import Path


class CataloguesMissing(RuntimeError):
    """A supported language has no (readable) compiled catalogue."""


def catalogue_path(directory: Path | Traversable, domain: str, language: str, suffix: str = ".po"):
    """`language`'s catalogue of `domain` under `directory` (".mo" for the compiled one)."""
    return directory.joinpath(language, "LC_MESSAGES", f"{domain}{suffix}")


def languages(directory: Path) -> list[str]:
    """The languages that have a catalogue (a directory under `directory`)."""
    return sorted(path.name for path in directory.iterdir() if path.is_dir()) if directory.is_dir() else []


def load_compiled(directory: Path | Traversable, domain: str, languages: Iterable[str], *,
                  texts: str, command: str) -> dict[str, gettext.GNUTranslations]:
    """Each language's compiled catalogue; CataloguesMissing naming every one that is not
    usable, what `texts` it would have translated and the `command` that writes it."""
    loaded, missing = {}, []
    for language in languages:
        path = catalogue_path(directory, domain, language, ".mo")
        try:
            with path.open("rb") as compiled:
                loaded[language] = gettext.GNUTranslations(compiled)
        except (OSError, ValueError, struct.error) as error:   # missing, or not a .mo (bad magic, cut short)
            missing.append(f"{language} ({path}: {error})")
    if missing:
        raise CataloguesMissing(f"no usable catalogue of {texts} for: " + "; ".join(missing) + f" - run {command}")
    return loaded
