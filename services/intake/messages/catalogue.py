"""Regenerate the catalogues of the patient messages' words (issue 18).

    python -m services.intake.messages.catalogue            # after changing compose.py's words
    python -m services.intake.messages.catalogue --check    # exit 1 if a file is out of date
    python -m services.intake.messages.catalogue --init fr  # start a catalogue for a new language

It extracts, with Babel, every msgid compose.py uses (its gettext, pgettext and N_ calls:
the English sentences with their {placeholders}, and the date patterns, msgctxt "date
pattern") with their TRANSLATORS: comments into the template `locale/patient_messages.pot`.
The catalogues under locale/ are updated and compiled from it by
services/common/catalogue_tool.py. An untranslated or fuzzy sentence would be sent in
English: tests/unit/test_patient_message_catalogue.py fails until a translator fills it in.
"""
from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file

from services.common import catalogue_tool

PROJECT = "clinic-referral intake patient messages"
HERE = Path(__file__).resolve().parent
SOURCE = HERE / "compose.py"
COMMENT_TAGS = ("TRANSLATORS:",)
DOMAIN = catalogue_tool.Domain(
    name="patient_messages",
    header=("# {language} translation of the messages intake sends patients about their appointment\n"
            "# (services/intake/messages/compose.py; docs/patient-messages.md). Plain and polite, for\n"
            "# patients; an SMS must stay short."))


def locale_dir() -> Path:
    return HERE / "locale"


def used(source: Path = SOURCE) -> list[tuple[str | None, str, list[str]]]:
    """(msgctxt, msgid, translator comments) of every message the code uses, in its order."""
    found = []
    for _line, message, comments, context in extract_from_file(
            "python", str(source), keywords=DEFAULT_KEYWORDS, comment_tags=COMMENT_TAGS, strip_comment_tags=True):
        found.append((context, message, comments))
    return found


def template(source: Path = SOURCE) -> Catalog:
    catalog = Catalog(domain=DOMAIN.name, project=PROJECT, version="1", fuzzy=False)
    for context, message, comments in used(source):
        flags = ("python-brace-format",) if "{" in message else ()
        catalog.add(message, context=context, auto_comments=comments, flags=flags)
    return catalog


def update(directory: Path, *, check: bool = False, init: str | None = None, source: Path = SOURCE) -> list[Path]:
    """Write (or, with `check`, only find) the files that are out of date; their paths."""
    return catalogue_tool.update(template(source), directory, DOMAIN, check=check, init=init)


def main(argv: list[str] | None = None) -> int:
    return catalogue_tool.command_line(
        argv, prog="python -m services.intake.messages.catalogue", description=__doc__.split("\n\n")[0],
        run=lambda **options: update(locale_dir(), **options))


if __name__ == "__main__":
    sys.exit(main())
