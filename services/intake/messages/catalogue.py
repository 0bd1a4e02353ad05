"""Regenerate the catalogues of the patient messages' words (issue 18).

    python -m services.intake.messages.catalogue            # after changing compose.py's words
    python -m services.intake.messages.catalogue --check    # exit 1 if a file is out of date
    python -m services.intake.messages.catalogue --init fr  # start a catalogue for a new language

It extracts, with Babel, every msgid compose.py uses (its gettext, pgettext and N_ calls:
the English sentences with their {placeholders}, and the date patterns, msgctxt "date
pattern") with their TRANSLATORS: comments into the template `locale/patient_messages.pot`.
Then, for every language under locale/, it updates `<lang>/LC_MESSAGES/patient_messages.po`
(new sentences added untranslated; a changed English sentence keeps its old translation only
as a fuzzy suggestion; a removed one becomes obsolete) and compiles `patient_messages.mo`
from it. Untranslated and fuzzy entries are left out of the .mo, so they would be sent in
English: tests/unit/test_patient_message_catalogue.py fails until a translator fills them in.

A file is rewritten only when more than its dates changed.
"""
from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

DOMAIN = "patient_messages"
PROJECT = "clinic-referral intake patient messages"
HERE = Path(__file__).resolve().parent
SOURCE = HERE / "compose.py"
COMMENT_TAGS = ("TRANSLATORS:",)
HEADER = ("# {language} translation of the messages intake sends patients about their appointment\n"
          "# (services/intake/messages/compose.py; docs/patient-messages.md). Plain and polite, for\n"
          "# patients; an SMS must stay short.")
_DATES = re.compile(rb'^"(POT-Creation-Date|PO-Revision-Date): .*\\n"$', re.MULTILINE)
_WIDTH = 100


def locale_dir() -> Path:
    return HERE / "locale"


def po_path(directory: Path, language: str) -> Path:
    return directory / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def languages(directory: Path) -> list[str]:
    """The languages that have a catalogue (a directory under locale/)."""
    return sorted(path.name for path in directory.iterdir() if path.is_dir()) if directory.is_dir() else []


def used(source: Path = SOURCE) -> list[tuple[str | None, str, list[str]]]:
    """(msgctxt, msgid, translator comments) of every message the code uses, in its order."""
    found = []
    for _line, message, comments, context in extract_from_file(
            "python", str(source), keywords=DEFAULT_KEYWORDS, comment_tags=COMMENT_TAGS, strip_comment_tags=True):
        found.append((context, message, comments))
    return found


def template(source: Path = SOURCE) -> Catalog:
    catalog = Catalog(domain=DOMAIN, project=PROJECT, version="1", fuzzy=False)
    for context, message, comments in used(source):
        flags = ("python-brace-format",) if "{" in message else ()
        catalog.add(message, context=context, auto_comments=comments, flags=flags)
    return catalog


def po_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, width=_WIDTH, sort_output=False, omit_header=False)
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    """The compiled catalogue; untranslated and fuzzy entries left out (Babel's default)."""
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, domain=DOMAIN)


def update(directory: Path, *, check: bool = False, init: str | None = None, source: Path = SOURCE) -> list[Path]:
    """Write (or, with `check`, only find) the files that are out of date; their paths."""
    pot = template(source)
    changed = []
    if _write(directory / f"{DOMAIN}.pot", po_bytes(pot), check):
        changed.append(directory / f"{DOMAIN}.pot")
    if init and not po_path(directory, init).exists():
        catalog = Catalog(locale=init, domain=DOMAIN, project=PROJECT, version="1", fuzzy=False,
                          header_comment=HEADER.format(language=Locale.parse(init).english_name))
        po_path(directory, init).parent.mkdir(parents=True, exist_ok=True)
        po_path(directory, init).write_bytes(po_bytes(catalog))
    for language in languages(directory):
        po = po_path(directory, language)
        catalog = read_catalog(po)
        catalog.update(pot, update_header_comment=False)
        po_changed = _write(po, po_bytes(catalog), check)
        if po_changed:
            changed.append(po)
        # compiled from the .po as it is (or, when checking, as it would be)
        compiled = catalog if check and po_changed else read_catalog(po)
        if _write(po.with_suffix(".mo"), mo_bytes(compiled), check):
            changed.append(po.with_suffix(".mo"))
    return changed


def _write(path: Path, content: bytes, check: bool) -> bool:
    """Whether `path` differs from `content` in more than its dates; written unless `check`."""
    if path.exists() and _DATES.sub(b"", path.read_bytes()) == _DATES.sub(b"", content):
        return False
    if not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake.messages.catalogue",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument("--init", metavar="LANG", help="start a catalogue for LANG (e.g. fr) if it has none")
    args = parser.parse_args(argv)
    changed = update(locale_dir(), check=args.check, init=args.init)
    for path in changed:
        print(f"{'out of date' if args.check else 'written'}: {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
